#!/usr/bin/env python3
"""CPU per small GET of each way a fetch helper could read objects, in one run on one bucket.

The candidates for the hot path of the S3 family (docs/performance.md, "Ways to send a GET"):
libcloud's request path over the lean http.client transport, one object at a time (the old
prefetcher's); libcurl's multi interface with every GET in flight at once, signed by libcloud's
full request path (``signed_get``) or by its hooks alone (``QuickSigner``, the fetch helper's
path); and, as the yardstick, a plain loop of SigV4-signed GETs over http.client with a signer of
its own.  Each runs in this process over the same objects; the figure is the process's CPU time
(user + system) per object, the bytes read and, where the ETag is a plain MD5, checked.

    .venv/bin/python benchmarks/get_paths.py --objects 3000
"""

import argparse
import hashlib
import http.client
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, os.path.dirname(HERE))

from bench.common import log  # noqa: E402
from bench.dataset import build_dataset, read_profiles  # noqa: E402
from bench.report import machine_info, versions  # noqa: E402
from bench.s3client import SigV4, object_path  # noqa: E402
from bench.server import start_server  # noqa: E402
from bench.uploads import upload_objects  # noqa: E402

BUCKET = "get-paths"
IN_FLIGHT = 24


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def libcloud_lean(drv, keys):
    from bareos_libcloud.helper import fetch
    from bareos_libcloud.retry import RetryPolicy

    got, retry = 0, RetryPolicy(1, 0.1)
    for key in keys:
        for _, chunk in fetch.read_object(drv, BUCKET, key, {"size": 0}, retry):
            got += len(chunk)
    return got


class _Discard:
    """A pipe end for an Outbox that throws what it is sent away (bytes to /dev/null)."""

    def __init__(self):
        self.fd = os.open(os.devnull, os.O_WRONLY)
        self.objects = 0
        self.bytes = 0

    def send(self, message):
        if message[0] == "object":
            self.objects += 1
            self.bytes += message[-1]
        elif message[0] != "retried":
            raise RuntimeError("unexpected answer %r" % (message,))

    def fileno(self):
        return self.fd


def curl_multi(drv, keys, quick):
    from bareos_libcloud.helper import curlfetch, fetcher, transport

    sink = _Discard()
    fallbacks = []
    path = curlfetch.CurlPath(drv, {"timeout": 30}, fetcher.Outbox(sink), lambda request, after=None:
                              fallbacks.append(request))
    if not quick:
        transport.QuickSigner.sign = lambda self, target, headers: transport.signed_get(self.drv, target, headers)
    todo = list(reversed(keys))
    seq = 0
    while todo or path.busy():
        while todo and len(path.running) < IN_FLIGHT:
            seq += 1
            path.add(("get", seq, BUCKET, todo.pop(), {"size": 0}, 1 << 20, 0, None))
        readable, writable, failed, timeout = path.wait_set()
        import select

        select.select(readable, writable, failed, timeout)
        path.step()
    if fallbacks or sink.objects != len(keys):
        raise RuntimeError("curl path: %d objects sent, %d fell back" % (sink.objects, len(fallbacks)))
    return sink.bytes


def sigv4_loop(server, keys):
    signer = SigV4("%s:%d" % (server.host, server.port), server.key, server.secret, server.region)
    conn = http.client.HTTPConnection(server.host, server.port)
    got = 0
    for key in keys:
        path = object_path(BUCKET, key)
        conn.request("GET", path, headers=signer.headers(path))
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError("GET %s: %d" % (key, response.status))
        etag = response.getheader("ETag", "").strip('"')
        if len(etag) == 32 and hashlib.md5(body).hexdigest() != etag:
            raise RuntimeError("MD5 of %s" % key)
        got += len(body)
    return got


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("rgw", "moto"), default="rgw")
    parser.add_argument("--objects", type=int, default=3000, help="small30k-shaped objects below 1 MiB")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each candidate (the best is kept)")
    args = parser.parse_args(argv)
    from bareos_libcloud.helper import driver as driver_mod

    profiles, _ = read_profiles(os.path.join(HERE, "size-profiles.tsv"))
    items = [(key, size) for key, size in build_dataset(profiles["small30k"], 1.0) if size < 1 << 20]
    items = items[:: max(1, len(items) // args.objects)][: args.objects]  # evenly: the profile's shape
    server, desc = start_server(args.server, sum(size for _, size in items))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        upload_objects(server, BUCKET, items)
        keys = [key for key, _ in items]
        total = sum(size for _, size in items)

        def driver(signature):
            provider, region = ("S3", "us-east-1") if signature == 4 else (server.provider, server.region)
            return driver_mod.make_driver(provider, dict(key=server.key, secret=server.secret, host=server.host,
                                                         port=server.port, secure=False, region=region), 30)

        candidates = [
            ("libcloud request path, lean http.client, one at a time (the old prefetcher)", "v2",
             lambda: libcloud_lean(driver(2), keys)),
            ("libcurl multi, %d in flight, signed_get (libcloud's full request path)" % IN_FLIGHT, "v2",
             lambda: curl_multi(driver(2), keys, quick=False)),
            ("libcurl multi, %d in flight, QuickSigner (the fetch helper)" % IN_FLIGHT, "v2",
             lambda: curl_multi(driver(2), keys, quick=True)),
            ("libcurl multi, %d in flight, QuickSigner, SigV4 key cached" % IN_FLIGHT, "v4",
             lambda: curl_multi(driver(4), keys, quick=True)),
            ("plain loop: own SigV4 signer + http.client + MD5 (bench's raw GET loop)", "v4",
             lambda: sigv4_loop(server, keys)),
        ]
        rows = []
        for name, signature, run in candidates:
            best = None
            for _ in range(args.rounds):
                before, wall = cpu(), time.monotonic()
                got = run()
                spent, wall = cpu() - before, time.monotonic() - wall
                if got != total:
                    raise RuntimeError("%s read %d bytes, expected %d" % (name, got, total))
                best = spent if best is None else min(best, spent)
            rows.append((name, signature, best * 1000 / len(keys)))
            log("%-90s %s %.3f ms CPU per object" % (name, signature, rows[-1][2]))
    finally:
        server.stop()
    yardstick = rows[-1][2]
    info = machine_info()
    print("\n%s, %s: %d objects of small30k's sizes below 1 MiB (%.1f MB), best of %d runs; %s, %s"
          % (started, desc, len(keys), total / 1e6, args.rounds, info.get("cpu", ""), versions().get("libcloud", "")))
    print("\n| way to GET | signature | CPU ms per object | vs the plain loop |\n|---|---|---:|---:|")
    for name, signature, ms in rows:
        print("| %s | %s | %.3f | %.2fx |" % (name, signature, ms, ms / yardstick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
