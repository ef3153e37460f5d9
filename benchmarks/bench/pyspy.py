"""py-spy: where the plugin's time goes, per process kind and function."""

import collections
import os
import re
import shutil
import sys


def pyspy_exe():
    exe = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return exe if os.path.exists(exe) else (shutil.which("py-spy") or "py-spy")


def _pyspy_kind(frames):
    procs = [f for f in frames if f.startswith("process ")]
    if procs and "--_fd-job" in procs[-1]:
        return "job process (emulator + plugin job thread)"
    text = ";".join(frames)
    if "fetcher_main" in text:
        return "fetch helpers"
    if "lister_main" in text:
        return "lister process"
    if "resource_tracker" in text:
        return "resource tracker"
    if "signer_main" in text:
        return "signer"
    return "helper start-up (fork server, imports, driver set-up)"


def read_stacks(raw_path):
    """(frames, samples) of each line of py-spy's raw output (collapsed stacks)."""
    with open(raw_path, errors="replace") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            try:
                count = int(count)
            except ValueError:
                continue
            yield stack.replace("spawn_main; spawn_main(", "spawn_main, spawn_main(").split(";"), count


def summarize_pyspy(raw_path, objects, rate=200, top=30):
    """Inclusive and self samples per function, per process kind, from py-spy's raw output
    (collapsed stacks), as milliseconds of sampled (non-idle) time per object."""
    per_kind = collections.defaultdict(lambda: [0, collections.Counter(), collections.Counter()])
    for frames, count in read_stacks(raw_path):
        kind = _pyspy_kind(frames)
        funcs = [re.sub(r"\(/[^)]*/(site-packages|lib/python3\.\d+|main)/", "(", fr)
                 for fr in frames if not fr.startswith("process ")]
        entry = per_kind[kind]
        entry[0] += count
        if funcs:
            entry[1][funcs[-1]] += count
            for fr in set(funcs):
                entry[2][fr] += count
    per_obj = 1000.0 / rate / max(objects, 1)  # ms of sampled time per object, per sample
    lines = ["Sampled at %d/s with `py-spy record --subprocesses` (idle threads left out by py-spy's "
             "heuristic; a blocking pipe read can still count). ms/object = samples / %d / %d objects."
             % (rate, rate, objects), ""]
    lines.append("| process kind | samples | ms/object |")
    lines.append("|---|---:|---:|")
    for kind, (total, _, _) in sorted(per_kind.items(), key=lambda kv: -kv[1][0]):
        lines.append("| %s | %d | %.2f |" % (kind, total, total * per_obj))
    lines.append("")
    for kind, (total, selfc, incl) in sorted(per_kind.items(), key=lambda kv: -kv[1][0]):
        lines.append("### %s: %d samples, %.2f ms/object" % (kind, total, total * per_obj))
        lines.append("")
        lines.append("| inclusive ms/object | inclusive % | self ms/object | self % | function |")
        lines.append("|---:|---:|---:|---:|---|")
        for fr, c in incl.most_common(top):
            lines.append("| %.3f | %.1f | %.3f | %.1f | `%s` |" % (c * per_obj, 100.0 * c / max(total, 1),
                                                                 selfc.get(fr, 0) * per_obj,
                                                                 100.0 * selfc.get(fr, 0) / max(total, 1), fr))
        lines.append("")
        lines.append("Top self time: " + "; ".join("`%s` %.3f" % (fr, c * per_obj) for fr, c in selfc.most_common(12)))
        lines.append("")
    return "\n".join(lines)
