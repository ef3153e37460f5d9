#!/usr/bin/env python3
"""Where the time of a no-change incremental goes: a listing-only incremental of N empty objects through the
emulated bareos-fd under ``py-spy record --subprocesses`` (samples of running threads, summed by phase), the
time a fresh interpreter takes to import what the fork server preloads (the serial start before the lister
can exist), next to ``rclone lsf -R`` of the same bucket.

    .venv/bin/python benchmarks/profile_incremental.py --objects 10000 --out /tmp/prof-incr
"""

import argparse
import collections
import os
import shutil
import sys
import subprocess
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench.cli import ensure_tools  # noqa: E402
from bench.common import NO_MARGIN, log  # noqa: E402
from bench.fdjob import run_fd_job  # noqa: E402
from bench.pyspy import read_stacks  # noqa: E402
from bench.rclone import run_rclone  # noqa: E402
from bench.server import start_server  # noqa: E402
from bench.uploads import upload_empty_objects  # noqa: E402

BUCKET = "incr-prof"
RATE = 200  # samples per second: bench.fdjob.run_fd_job's py-spy rate

#: (phase, test on a sample's frames); the first match wins
PHASES = [
    ("fork server: starting, importing libcloud (PRELOAD)", lambda s: "forkserver.py" in s and "_serve_one" not in s),
    ("lister: driver set-up, bucket checks", lambda s: "lister_main" in s and "list_all" not in s),
    ("lister: listing pages (requests, parsing, sending entries)", lambda s: "lister_main" in s),
    ("other helpers (forked, resource tracker)", lambda s: "forkserver.py" in s or "resource_tracker" in s),
    ("job thread: plugin start-up (imports, options, starting the lister)",
     lambda s: "bareos-fd-libcloud.py" in s and ("_find_and_load" in s or "Helper.__init__" in s or "_start" in s)),
    ("job thread: plugin calls, other work", lambda s: "bareos-fd-libcloud.py" in s or "bareos_libcloud/" in s),
    ("job process: the emulated daemon and its start", lambda s: True),
]


def preload_seconds():
    """Seconds a fresh interpreter takes to import the fork server's PRELOAD (best of 3)."""
    from bareos_libcloud.job.helpers import PRELOAD

    code = "import time; t = time.perf_counter(); import %s; print(time.perf_counter() - t)" % ", ".join(PRELOAD)
    return min(float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
               for _ in range(3))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    ensure_tools(rclone=True, pyspy=True)
    from harness import plugin_string

    server, desc = start_server("rgw", 0)
    work = tempfile.mkdtemp(prefix="bareos-libcloud-prof-incr-")
    os.makedirs(args.out, exist_ok=True)
    raw = os.path.join(os.path.abspath(args.out), "pyspy-incremental.txt")
    try:
        upload_empty_objects(server, BUCKET, args.objects)
        opts = dict(buckets_include=BUCKET)
        wd = os.path.join(work, "fd")
        run_fd_job(wd, plugin_string(server, prefix="no-such-prefix/", **opts), level="F", job_name="list")
        time.sleep(1.1)
        plain = run_fd_job(wd, plugin_string(server, **dict(opts, **NO_MARGIN)), level="I", job_name="list")
        prof = run_fd_job(wd, plugin_string(server, **dict(opts, **NO_MARGIN)), level="I", job_name="list",
                          pyspy=raw, pyspy_args=[])
        lsf = run_rclone(server, ["lsf", "-R", "bench:" + BUCKET])[0]
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    counts = collections.Counter()
    for frames, count in read_stacks(raw):
        text = ";".join(frames)
        for phase, test in PHASES:
            if test(text):
                counts[phase] += count
                break
    imports = preload_seconds()
    lines = ["%s, %d empty objects: no-change incremental %.2f s unprofiled (%.2f s profiled); rclone lsf -R %.2f s"
             % (desc, args.objects, plain["seconds"], prof["seconds"], lsf),
             "importing the fork server's PRELOAD in a fresh interpreter: %.2f s (best of 3)" % imports, "",
             "| phase (py-spy samples of running threads, every process; processes overlap) | s |",
             "|---|---:|"]
    for phase, _ in PHASES:
        if counts[phase]:
            lines.append("| %s | %.2f |" % (phase, counts[phase] / RATE))
    text = "\n".join(lines)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(text + "\n")
    log(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
