"""Figures, targets and notes of a run, and their markdown for performance-sample.md."""

import hashlib
import os
import platform
import subprocess

from .common import GiB, REPO, log
from .rclone import rclone_version


def machine_info():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "?"
    return dict(nproc=os.cpu_count(), ram_gib=ram / GiB, cpu=cpu, kernel=platform.release(), load=load)


def versions():
    import boto3
    import libcloud

    out = dict(python=platform.python_version(), libcloud=libcloud.__version__, boto3=boto3.__version__,
               rclone=rclone_version())
    try:
        out["ceph"] = subprocess.run(["ceph", "--version"], stdout=subprocess.PIPE, text=True,
                                     timeout=30).stdout.strip()
    except Exception:  # noqa: BLE001
        out["ceph"] = "not installed"
    try:
        import moto
        out["moto"] = moto.__version__
    except Exception:  # noqa: BLE001
        pass
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                              stdout=subprocess.PIPE, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "bareos_libcloud", "tests/fdemu",
                                "bareos-fd-libcloud.py"], stdout=subprocess.PIPE, text=True).stdout.split()
        dirty = [d for d in dirty if "/" in d or d.endswith(".py")]
        diff = subprocess.run(["git", "-C", REPO, "diff", "HEAD", "--", "bareos_libcloud", "tests/fdemu",
                               "bareos-fd-libcloud.py"], stdout=subprocess.PIPE).stdout
        out["bareos-libcloud"] = head + (" + uncommitted changes in %s (diff sha1 %s)"
                                         % (", ".join(dirty), hashlib.sha1(diff).hexdigest()[:10]) if dirty else "")
    except Exception:  # noqa: BLE001
        pass
    return out


def md_head(args, title, command, started, load_start, server_desc):
    """The first lines of a performance-sample.md section: title, command, machine, versions, server."""
    mi, ver = machine_info(), getattr(args, "versions_start", None) or versions()
    ver_end = versions().get("bareos-libcloud")
    return [
        "## %s, %s" % (started.strftime("%Y-%m-%d %H:%M UTC"), title),
        "",
        "- command: `%s`" % command,
        "- machine: %d cores (%s), %.1f GiB RAM, Linux %s; load average at the start %s, at the end %s "
        "(the benchmark's own processes count; other sessions may share the machine)"
        % (mi["nproc"], mi["cpu"], mi["ram_gib"], mi["kernel"], load_start, mi["load"]),
        "- versions: " + ", ".join("%s %s" % kv for kv in ver.items()) + (
            "" if ver_end == ver.get("bareos-libcloud") else
            " (at the start; at the end of the run: %s - the plugin's code changed during the run)" % ver_end),
        "- server: %s on 127.0.0.1" % server_desc,
    ]


def md_tables(rep):
    """A Report's figures, targets and notes as markdown lines."""
    lines = ["", "| measurement | figure |", "|---|---|"]
    lines += ["| %s | %s |" % (what, fig) for what, fig in rep.rows]
    lines += ["", "| target | measured | goal | verdict |", "|---|---:|---:|---|"]
    lines += ["| %s | %.2fx | %s %.1fx | %s |" % (name, ratio, ">=" if hib else "<=", goal, verdict)
              for name, ratio, goal, verdict, hib in rep.ratios]
    if rep.notes:
        lines += [""] + ["- note: " + t for t in rep.notes]
    return lines


class Report:
    def __init__(self):
        self.rows = []  # (measure, figure)
        self.ratios = []  # (target, measured ratio, goal, PASS/MISS)
        self.notes = []

    def add(self, what, figure):
        self.rows.append((what, figure))
        log("  %-62s %s" % (what, figure))

    def target(self, name, ratio, goal, higher_is_better=True):
        ok = ratio >= goal if higher_is_better else ratio <= goal
        verdict = "PASS" if ok else "MISS"
        self.ratios.append((name, ratio, goal, verdict, higher_is_better))
        log("  %-62s %.2fx (target %s %.1fx) %s" % (name, ratio, ">=" if higher_is_better else "<=", goal, verdict))

    def note(self, text):
        self.notes.append(text)
        log("  note: " + text)


def prepend_md(path, lines):
    """Insert a run's section above the newest one (newest first), below the title, targets and history."""
    text = open(path).read() if os.path.exists(path) else (
        "# Performance sample\n\nMeasured figures of bareos-libcloud, written by `benchmarks/bench.py --write-md`.\n")
    cut = text.find("\n## 20")  # before the newest run: the targets and the history stay on top
    if cut < 0:
        cut = text.find("\n## ")
    head, rest = (text, "") if cut < 0 else (text[:cut + 1], text[cut + 1:])
    with open(path, "w") as f:
        f.write(head.rstrip("\n") + "\n\n" + "\n".join(lines).rstrip("\n") + "\n\n" + rest)
    log("\nwrote %s" % path)
