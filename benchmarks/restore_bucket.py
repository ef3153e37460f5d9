#!/usr/bin/env python3
"""Restoring into a bucket: objects/s of the plugin's restore against a plain parallel PUT loop.

One run on one server: small30k-shaped objects are uploaded with boto3 from 24 threads (timed: the
yardstick, the store's PUT rate for this client), backed up through the emulated bareos-fd, then
restored (1) to disk and (2) into a new bucket with ``restore_to=bucket`` at the plugin's defaults
(the uploads: ``nb_prefetcher``, at most 16, at once).  Each restored bucket is read back and
compared by size and count; the figures are wall time and objects/s.

    .venv/bin/python benchmarks/restore_bucket.py --objects 3000
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, os.path.dirname(HERE))

from bench.common import log  # noqa: E402
from bench.dataset import build_dataset, read_profiles  # noqa: E402
from bench.report import machine_info, versions  # noqa: E402
from bench.server import start_server  # noqa: E402
from bench.uploads import upload_objects  # noqa: E402

BUCKET = "restore-source"
TARGET = "restore-target"
PUT_THREADS = 24


def listed_sizes(server, bucket):
    client = server.boto3_client()
    sizes = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            sizes[item["Key"]] = item["Size"]
    return sizes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("rgw", "moto"), default="rgw")
    parser.add_argument("--objects", type=int, default=3000, help="small30k-shaped objects below 1 MiB")
    args = parser.parse_args(argv)
    from fdemu import FileDaemon
    from harness import plugin_string

    profiles, _ = read_profiles(os.path.join(HERE, "size-profiles.tsv"))
    items = [(key, size) for key, size in build_dataset(profiles["small30k"], 1.0) if size < 1 << 20]
    items = items[:: max(1, len(items) // args.objects)][: args.objects]
    total = sum(size for _, size in items)
    server, desc = start_server(args.server, 3 * total)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    work = tempfile.mkdtemp(prefix="restore-bench-", dir="/var/tmp")
    rows = []
    try:
        wall = time.monotonic()
        upload_objects(server, BUCKET, items, threads=PUT_THREADS)
        rows.append(("boto3 put_object, %d threads (the yardstick)" % PUT_THREADS, time.monotonic() - wall))
        fd = FileDaemon(os.path.join(work, "fd"))
        backup = fd.backup(plugin_string(server, buckets_include=BUCKET))
        if backup.status != "T":
            raise RuntimeError("backup: %s" % backup.messages)
        wall = time.monotonic()
        local = fd.restore(where=os.path.join(work, "disk"))
        rows.append(("plugin restore to disk (where=)", time.monotonic() - wall))
        if local.status != "T":
            raise RuntimeError("restore to disk: %s" % local.messages)
        shutil.rmtree(os.path.join(work, "disk"))
        wall = time.monotonic()
        into = fd.restore(where=os.path.join(work, "spool"),
                          plugin_options="python3:restore_to=bucket:restore_bucket=" + TARGET)
        rows.append(("plugin restore into a bucket (restore_to=bucket)", time.monotonic() - wall))
        if into.status != "T":
            raise RuntimeError("restore into a bucket: %s" % into.messages)
        if listed_sizes(server, TARGET) != dict(items):
            raise RuntimeError("the restored bucket does not hold the objects")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    info = machine_info()
    print("\n%s, %s: %d objects of small30k's sizes below 1 MiB (%.1f MB); %s, libcloud %s"
          % (started, desc, len(items), total / 1e6, info.get("cpu", ""), versions().get("libcloud", "")))
    print("\n| what | seconds | objects/s | vs the yardstick |\n|---|---:|---:|---:|")
    yardstick = len(items) / rows[0][1]
    for name, seconds in rows:
        rate = len(items) / seconds
        print("| %s | %.1f | %.0f | %.2fx |" % (name, seconds, rate, rate / yardstick))
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
