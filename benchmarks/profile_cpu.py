#!/usr/bin/env python3
"""Where the plugin's CPU goes per object: one Full backup of a profile bucket through the emulated bareos-fd
under ``py-spy record --gil --subprocesses`` (only samples of threads holding the GIL: Python CPU time), with
the plugin's default options, split into categories (benchmarks/bench/cpu_split.py), next to the CPU time of
each kind of process (psutil, the same run) and an unprofiled run's.

    .venv/bin/python benchmarks/profile_cpu.py --server rgw --profile small30k --scale 0.1 --out /tmp/prof
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench.common import BUCKET, HERE, log  # noqa: E402
from bench.cpu_split import cpu_split  # noqa: E402
from bench.dataset import build_dataset, read_profiles  # noqa: E402
from bench.fdjob import run_fd_job  # noqa: E402
from bench.server import start_server  # noqa: E402
from bench.cli import ensure_tools  # noqa: E402
from bench.uploads import upload_objects  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("rgw", "moto"), default="rgw")
    parser.add_argument("--profile", choices=("small30k", "many1m"), default="small30k")
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--out", required=True, help="directory for py-spy's raw output and the summary")
    args = parser.parse_args(argv)
    ensure_tools(rclone=False, pyspy=True)
    from harness import plugin_string

    profiles, _ = read_profiles(os.path.join(HERE, "size-profiles.tsv"))
    items = build_dataset(profiles[args.profile], args.scale)
    server, server_desc = start_server(args.server, sum(s for _, s in items))
    work = tempfile.mkdtemp(prefix="bareos-libcloud-prof-")
    os.makedirs(args.out, exist_ok=True)
    raw_path = os.path.join(os.path.abspath(args.out), "pyspy-gil.txt")
    try:
        upload_objects(server, BUCKET, items)
        time.sleep(1.5)
        plugin = plugin_string(server, buckets_include=BUCKET)  # the plugin's defaults otherwise
        plain = run_fd_job(os.path.join(work, "plain"), plugin, level="F")
        prof = run_fd_job(os.path.join(work, "prof"), plugin, level="F", pyspy=raw_path,
                          pyspy_args=["--gil"])
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    n = prof["files"]
    rows, total = cpu_split(raw_path, n, args.rate)
    lines = ["%s, %s x %g: %d objects; unprofiled run %.1f s (%.0f objects/s), profiled %.1f s"
             % (server_desc, args.profile, args.scale, n, plain["seconds"], plain["files"] / plain["seconds"],
                prof["seconds"]), "",
             "| process kind | CPU ms/object, unprofiled run | CPU ms/object, profiled run |", "|---|---:|---:|"]
    for role in sorted(set(plain["cpu"]) | set(prof["cpu"])):
        lines.append("| %s | %.3f | %.3f |" % (role, plain["cpu"].get(role, 0) * 1000 / plain["files"],
                                               prof["cpu"].get(role, 0) * 1000 / n))
    lines.append("| job thread (of the job process), inside plugin calls | %.3f | %.3f |"
                 % (plain["plugin_cpu"] * 1000 / plain["files"], prof["plugin_cpu"] * 1000 / n))
    lines.append("| job thread, all | %.3f | %.3f |"
                 % (plain["job_thread_cpu"] * 1000 / plain["files"], prof["job_thread_cpu"] * 1000 / n))
    lines += ["", "py-spy --gil, %d samples at %d/s:" % (total, args.rate), "",
              "| where (samples holding the GIL) | samples | ms/object | share |", "|---|---:|---:|---:|"]
    lines += ["| %s | %d | %.3f | %.1f%% |" % (c, k, ms, 100.0 * k / max(total, 1)) for c, k, ms in rows]
    text = "\n".join(lines)
    with open(os.path.join(args.out, "cpu-split.md"), "w") as f:
        f.write(text + "\n")
    log(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
