#!/usr/bin/env python3
"""How much N shard jobs list, against one job: ``shard=K/N`` (hash) and ``shard_by=prefix``.

Runs no-change incrementals (every object listed, none saved) through the emulated bareos-fd
(tests/fdemu) against benchmarks/listing_server.py, which makes up a bucket ``tree-KEYS-P`` of
KEYS empty objects spread evenly over P top-level prefixes and counts the listing requests it
answers.  For each layout it runs one unsharded job, then the N hash shards at once, then the N
prefix shards at once (each job a process of its own, as N jobs on one client would be), and
reports the listing requests the server answered, the wall time until the last job ended, and
the objects each job listed.

    .venv/bin/python benchmarks/shard_listing.py                       # 100000 keys, 4 shards
    .venv/bin/python benchmarks/shard_listing.py --write-md            # and prepend to performance-sample.md
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [HERE, os.path.join(REPO, "tests"), REPO]

from bench.report import machine_info, prepend_md  # noqa: E402 - after the path is set


def job_main(spec):
    """In a child process: one no-change incremental; prints one JSON line."""
    from fdemu import FileDaemon

    fd = FileDaemon(spec["workdir"])
    # An empty Full first (its prefix matches nothing): the emulator runs an Incremental without
    # a Full as a Full, which would read every object.
    fd.backup(spec["empty"], level="F", job_name=spec["job"])
    time.sleep(1.1)
    print("READY", flush=True)  # the N shards start their incrementals together
    sys.stdin.readline()
    started = time.monotonic()
    result = fd.backup(spec["plugin"], level="I", since=int(time.time()) + 60, job_name=spec["job"])
    seconds = time.monotonic() - started
    text = [t for _, t in result.messages if "objects listed" in t]
    listed = int(re.search(r"(\d+) objects listed", text[-1]).group(1)) if text else -1
    print("SHARDJOB " + json.dumps({"status": result.status, "listed": listed, "seconds": seconds,
                                    "saved": len([r for r in result.files if r.cataloged])}))


def run_jobs(server, bucket, work, option_sets):
    """Run one job per option set at once; returns (wall seconds, [job results])."""
    from harness import plugin_string

    procs = []
    for index, options in enumerate(option_sets):
        spec = {"workdir": os.path.join(work, "fd-%d-%d" % (len(os.listdir(work)), index)), "job": "shard-%d" % index,
                "plugin": plugin_string(server, buckets_include=bucket, nb_prefetcher=2, **options),
                "empty": plugin_string(server, buckets_include=bucket, prefix="no-such-prefix/")}
        procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), "--_job", json.dumps(spec)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True))
    for proc in procs:  # each has started and run its empty Full
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError("a job did not start (rc %s)" % proc.wait())
    server.requests.clear()  # the empty Fulls' requests are not counted
    started = time.monotonic()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=3600)
        line = [l for l in out.splitlines() if l.startswith("SHARDJOB ")]
        if proc.returncode != 0 or not line:
            raise RuntimeError("a job failed (rc %s):\n%s" % (proc.returncode, out[-2000:]))
        results.append(json.loads(line[-1][9:]))
    wall = time.monotonic() - started
    for result in results:
        if result["status"] != "T" or result["saved"]:
            raise RuntimeError("a job did not end OK with nothing saved: %r" % result)
    return wall, results


def measure(args, prefixes, work):
    from listing_server import ListingServer

    bucket = "tree-%d-%d" % (args.keys, prefixes)
    n = args.shards
    rows = []
    with ListingServer(trees=[bucket]) as server:
        for mode, option_sets in (
            ("one job", [{}]),
            ("%d shards, shard_by=hash" % n, [{"shard": "%d/%d" % (k, n)} for k in range(1, n + 1)]),
            ("%d shards, shard_by=prefix" % n, [{"shard": "%d/%d" % (k, n), "shard_by": "prefix"}
                                                 for k in range(1, n + 1)]),
        ):
            wall, results = run_jobs(server, bucket, work, option_sets)
            listed = [r["listed"] for r in results]
            if sum(listed) != args.keys:
                raise RuntimeError("%s listed %d objects in all, not %d" % (mode, sum(listed), args.keys))
            flat = server.requests[(bucket, "flat")]
            delimited = server.requests[(bucket, "delimiter")]
            rows.append((prefixes, mode, flat + delimited, delimited, wall, max(r["seconds"] for r in results),
                         min(listed), max(listed)))
            print("%5d prefixes  %-28s %5d requests (%d with a delimiter)  %.1f s (slowest job %.1f s)  "
                  "objects per job %d-%d" % rows[-1], flush=True)
    return rows


def machine():
    info = machine_info()
    return "%d cores (%s), %.1f GiB RAM, Linux %s; load average at the start %s" % (
        info["nproc"], info["cpu"], info["ram_gib"], info["kernel"], info["load"])


def markdown(args, rows, started, where):
    import libcloud

    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                            text=True).stdout.strip()
    lines = [
        "## %s, listing %d keys in %d shards (synthetic listing server)" % (started, args.keys, args.shards),
        "",
        "- command: `%s`" % " ".join([".venv/bin/python benchmarks/shard_listing.py"] + args.argv + ["--write-md"]),
        "- machine: %s" % where,
        "- versions: python %s, libcloud %s, bareos-libcloud %s" % (platform.python_version(), libcloud.__version__,
                                                                   commit),
        "- method ([docs/scale-out.md](docs/scale-out.md#measured)): `benchmarks/listing_server.py` makes up a "
        "bucket of %d empty objects spread evenly over P top-level prefixes and counts the ListObjects requests "
        "it answers (1000 entries a page); each job is a no-change Incremental through the emulated bareos-fd "
        "(every object listed, none saved) after an empty Full, in a process of its own; the N shards of a row "
        "start their incrementals together, the time is until the last one ended" % args.keys,
        "",
        "| top-level prefixes | jobs | listing requests (with a delimiter) | time, all jobs | objects per job |",
        "|---:|---|---:|---:|---|",
    ]
    for prefixes, mode, total, delimited, wall, slowest, low, high in rows:
        lines.append("| %d | %s | %d (%d) | %.1f s | %s |" % (
            prefixes, mode, total, delimited, wall, ("%d" % low) if low == high else "%d-%d" % (low, high)))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=100000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--prefixes", default="16,100,1000",
                        help="comma-separated numbers of top-level prefixes, one layout each")
    parser.add_argument("--write-md", action="store_true", help="prepend the figures to performance-sample.md")
    parser.add_argument("--md", default=os.path.join(REPO, "performance-sample.md"))
    parser.add_argument("--_job", dest="job", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.job:
        job_main(json.loads(args.job))
        return 0
    args.argv = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--write-md"]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    where = machine()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bareos-libcloud-shards-") as work:
        for prefixes in (int(p) for p in args.prefixes.split(",")):
            rows += measure(args, prefixes, work)
    lines = markdown(args, rows, started, where)
    print("\n".join(lines))
    if args.write_md:
        prepend_md(args.md, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
