"""(m) the memory cap: peak RSS of whole backups against prefetch_memory (see the package docstring)."""

import collections
import hashlib
import os
import shutil
import sys
import tempfile
import time

from .common import GiB, MiB, fmt_mib, log, parse_size_text
from .fdjob import run_fd_job
from .report import md_head, prepend_md
from .sampler import short_role
from .uploads import upload_empty_objects, upload_generated, upload_large, upload_same_size


MEM_BASE_BUCKET = "mem-base"
MEM_HUGE_BUCKET = "mem-2g"
MEM_TINY_BUCKET = "mem-tiny"
MEM_NEAR_BUCKET = "mem-near"
CHUNK = 256 * 1024  # the plugin's stream chunk (bareos_libcloud.answers.CHUNK_SIZE)
DEFAULT_PREFETCH_SIZE = 10 * MiB


def tiny_key(i):
    return "t/%02d/obj-%08d" % (i % 50, i)


def tiny_body(i, max_size=1024):
    size = (i * 7919) % (max_size + 1)
    return (hashlib.sha256(b"%d" % i).digest() * (max_size // 32 + 1))[:size]


def upload_tiny_objects(server, bucket, count, seconds, processes=4, threads=16):
    """Up to ``count`` tiny objects within about ``seconds``. Returns (stored, seconds)."""
    return upload_generated(server, bucket, count, tiny_key, tiny_body, seconds, processes, threads)


def memory_main(args, command, started, load_start):
    """--only m: peak RSS of whole backups against prefetch_memory (see the module docstring)."""
    huge = int(args.mem_huge_gib * GiB)
    near_size = DEFAULT_PREFETCH_SIZE - 4096
    budgets = [b.strip() for b in args.mem_budgets.split(",") if b.strip()]
    prefetchers = [int(x) for x in args.mem_prefetchers.split(",")]
    store_bytes = int((2 * huge + args.mem_near * near_size) * 1.6) + 6 * GiB
    free = shutil.disk_usage(tempfile.gettempdir()).free
    if free < store_bytes + 2 * huge + 4 * GiB:
        sys.exit("not enough free disk in %s: %.1f GiB, need %.1f GiB (bluestore file + the emulator's volume)"
                 % (tempfile.gettempdir(), free / GiB, (store_bytes + 2 * huge + 4 * GiB) / GiB))
    from servers import RadosGW

    server = RadosGW(store="bluestore", store_bytes=store_bytes).start()
    server_desc = "radosgw, bluestore (%.1f GiB sparse file)" % (store_bytes / GiB)
    work = tempfile.mkdtemp(prefix="bareos-libcloud-bench-mem-")
    rows, notes, uploads = [], [], []
    try:
        from harness import plugin_string

        log("server: %s at %s (up in %.1fs)" % (server_desc, server.endpoint_url, server.start_seconds))
        # an almost empty bucket: enough objects that every prefetcher starts, each empty
        upload_empty_objects(server, MEM_BASE_BUCKET, 200)
        datasets = [("baseline", MEM_BASE_BUCKET, 200, 0)]
        if "m1" in args.mem_sets:
            for i in range(2):
                secs, etag = upload_large(server, MEM_HUGE_BUCKET, "huge/blob-%d.bin" % i, huge, True)
                log("uploaded a %.2f GiB object in %.1fs" % (huge / GiB, secs))
            uploads.append("m1: 2 x %.2f GiB (multipart)" % (huge / GiB))
            datasets.append(("m1", MEM_HUGE_BUCKET, 2, 2 * huge))
        if "m2" in args.mem_sets:
            stored, secs = upload_tiny_objects(server, MEM_TINY_BUCKET, args.mem_tiny, args.mem_tiny_seconds)
            log("uploaded %d tiny objects in %.1fs (%.0f PUT/s)" % (stored, secs, stored / secs))
            uploads.append("m2: %d tiny objects (0-1 KiB) in %.0f s (%.0f PUT/s)" % (stored, secs, stored / secs))
            if stored < args.mem_tiny:
                notes.append("m2: %d of the %d tiny objects were uploaded within the %d s allowed"
                             % (stored, args.mem_tiny, args.mem_tiny_seconds))
            datasets.append(("m2", MEM_TINY_BUCKET, stored, None))
        if "m3" in args.mem_sets:
            secs = upload_same_size(server, MEM_NEAR_BUCKET, args.mem_near, near_size)
            log("uploaded %d objects of ~%d bytes in %.1fs" % (args.mem_near, near_size, secs))
            uploads.append("m3: %d objects of %d-%d bytes (prefetch_size is %d)"
                           % (args.mem_near, near_size - args.mem_near + 1, near_size, DEFAULT_PREFETCH_SIZE))
            datasets.append(("m3", MEM_NEAR_BUCKET, args.mem_near, None))
        time.sleep(1.5)

        baseline = {}
        for n in prefetchers:
            for name, bucket, count, _ in datasets:
                variants = [None]
                if name == "m3":
                    variants = budgets
                elif name != "baseline":
                    variants = ["256M"]
                for budget in variants:
                    o = dict(buckets_include=bucket, nb_prefetcher=n)
                    if budget is not None:
                        o["prefetch_memory"] = budget
                    if name == "m3":
                        o["queue_size"] = 1000
                    wd = os.path.join(work, "fd-%s-%d-%s" % (name, n, budget))
                    log("\n(m) %s, nb_prefetcher=%d, prefetch_memory=%s" % (name, n, budget or "default"))
                    r = run_fd_job(wd, plugin_string(server, **o), level="F")
                    shutil.rmtree(wd, ignore_errors=True)
                    row = dict(name=name, n=n, budget=budget, count=count, res=r)
                    if name == "baseline":
                        baseline[n] = r
                    row["base"] = baseline[n]
                    rows.append(row)
                    log(format_mem_row(row))
                    if name in ("m2", "m3") and args.mem_trace and n == prefetchers[0]:
                        log("(m) %s once more, the job process under tracemalloc (not timed)" % name)
                        t = run_fd_job(wd, plugin_string(server, **o), level="F", trace=True)
                        shutil.rmtree(wd, ignore_errors=True)
                        notes.append("%s, prefetch_memory=%s: " % (name, budget) + trace_note(t, count))
                        log(notes[-1])
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    lines = memory_md(args, command, started, load_start, server_desc, rows, uploads, notes)
    log("\n".join(lines))
    if args.write_md:
        prepend_md(args.md, lines)
    return 0


def _base_per_process(base):
    """{role: mean VmHWM of one process of that kind} in the baseline backup."""
    return {role: sm / procs for role, (procs, mx, sm, anon) in base["hwm_by_role"].items() if procs}


def _roles_text(r, base):
    """Per kind of process: count, max VmHWM of one process, and the growth of their summed VmHWM
    over as many processes of the baseline (a run may start fewer prefetchers than the baseline)."""
    per = _base_per_process(base)
    parts = []
    for role, (procs, mx, sm, anon) in sorted(r["hwm_by_role"].items()):
        b = per.get(role, 0)
        parts.append("%s x%d: max %s (+%s), sum +%s" % (short_role(role), procs, fmt_mib(mx), fmt_mib(mx - b),
                                                       fmt_mib(sm - procs * b)))
    if r.get("peak_by_role"):
        parts.append("at the sampled peak, over as many baseline processes: " + ", ".join(
            "%s x%d +%s" % (short_role(role), cnt, fmt_mib(rss - cnt * per.get(role, 0)))
            for role, (rss, cnt) in sorted(r["peak_by_role"].items())))
    if r.get("vm_hwm"):
        parts.append("job process at the job's end, before the emulator's catalog write: VmHWM %s, VmRSS %s"
                     % (fmt_mib(r["vm_hwm"]), fmt_mib(r["vm_rss"])))
    return "; ".join(parts)


def trace_note(t, count):
    """Who holds the job process's memory at the end of a job (tracemalloc, by source file)."""
    groups = collections.defaultdict(int)
    for fname, size, _ in t.get("tracemalloc", []):
        groups["tests/fdemu (the emulator)" if "fdemu" in fname else
               "bareos_libcloud (the plugin)" if "bareos_libcloud" in fname else "other"] += size
    top = ", ".join("`%s` %s" % (f, fmt_mib(size)) for f, size, _ in t.get("tracemalloc", [])[:6])
    return ("under tracemalloc (%d objects): at the job's end the job process held %s of live Python allocations "
            "(%s per object; VmRSS %s): %s. Largest source files: %s. Peak of live Python allocations during the job "
            "%s, against the job process's VmHWM %s (growth over the baseline's VmHWM, about 29 MiB, is what the "
            "process held)" % (count, fmt_mib(t.get("tracemalloc_total", 0)),
                               "%.0f bytes" % (t.get("tracemalloc_total", 0) / max(count, 1)), fmt_mib(t.get("vm_rss", 0)),
                               ", ".join("%s %s" % (g, fmt_mib(v)) for g, v in sorted(groups.items())), top,
                               fmt_mib(t.get("tracemalloc_peak", 0)), fmt_mib(t.get("vm_hwm", 0))))


def mem_verdict(row):
    """(verdict, peak minus the fixed overhead of the processes that ran, allowed)."""
    if row["name"] == "baseline":
        return "", None, None
    budget = parse_size_text(row["budget"] or "256M")
    per = _base_per_process(row["base"])
    if row["res"].get("peak_by_role"):  # the processes alive at the peak (the lister may have ended)
        fixed = sum(cnt * per.get(role, 0) for role, (_, cnt) in row["res"]["peak_by_role"].items())
    else:
        fixed = sum(procs * per.get(role, 0) for role, (procs, _, _, _) in row["res"]["hwm_by_role"].items())
    excess = row["res"]["peak_rss"] - fixed
    allowed = budget + (row["n"] + 2) * CHUNK
    return ("held" if excess <= allowed else "EXCEEDED"), excess, allowed


def format_mem_row(row):
    r = row["res"]
    verdict, excess, allowed = mem_verdict(row)
    text = "  %-8s nb=%-3d budget=%-5s %7d objects %6.1f s  peak %s (%d procs), PSS %s" % (
        row["name"], row["n"], row["budget"] or "-", r["files"], r["seconds"], fmt_mib(r["peak_rss"]),
        r["peak_procs"], fmt_mib(r.get("peak_pss", 0)))
    if excess is not None:
        text += "  over baseline %s, allowed %s: %s" % (fmt_mib(excess), fmt_mib(allowed), verdict)
    return text + "\n    per process (VmHWM): " + _roles_text(r, row["base"])


def memory_md(args, command, started, load_start, server_desc, rows, uploads, notes):
    lines = md_head(args, "memory cap (`prefetch_memory`), rgw", command, started, load_start, server_desc)
    lines += [
        "- data: " + "; ".join(uploads) + "; baseline: 200 empty objects (every prefetcher starts)",
        "- peak RSS: the largest sum of RSS over the emulator's process and all its descendants, sampled every "
        "50 ms; 'over baseline' = peak - the fixed overhead of the processes alive at the peak (for each kind, "
        "their count x the mean VmHWM of one such process in the baseline backup with the same `nb_prefetcher`); allowed = `prefetch_memory` + (nb_prefetcher + 2) x 256 KiB chunks. "
        "Per process: the kernel's VmHWM (peak RSS of that process): the largest of a kind (its growth over "
        "one baseline process) and the growth of their sum over as many baseline processes. Peak PSS: the largest "
        "sum of PSS (a page shared by k processes counts 1/k in each), sampled every 0.5 s: what the job's "
        "processes cost the machine, since the helpers share the fork server's pages",
        "",
        "| set | nb_prefetcher | prefetch_memory | objects | seconds | peak RSS | over baseline | allowed | verdict "
        "| peak PSS | per process (VmHWM) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for row in rows:
        r = row["res"]
        verdict, excess, allowed = mem_verdict(row)
        lines.append("| %s | %d | %s | %d | %.1f | %s | %s | %s | %s | %s | %s |" % (
            row["name"], row["n"], row["budget"] or "default (256M)", r["files"], r["seconds"],
            fmt_mib(r["peak_rss"]), fmt_mib(excess) if excess is not None else "-",
            fmt_mib(allowed) if allowed is not None else "-", verdict or "-", fmt_mib(r.get("peak_pss", 0)),
            _roles_text(r, row["base"])))
    lines += [""] + ["- note: " + t for t in notes]
    return lines
