"""(b) ``rclone copy`` of the same bucket to local disk (--transfers N --checkers N)"""

import os
import shutil

from .common import BUCKET, fmt_mib, log
from .rclone import run_rclone


def measure(ctx):
    """(b) into ctx.results: rclone_copy"""
    server = ctx.server
    rep = ctx.rep
    results = ctx.results
    n = ctx.n
    items = ctx.items
    data_bytes = ctx.data_bytes
    work = ctx.work
    log("\n(b) rclone copy, --transfers %d --checkers %d" % (n, n))
    dest = os.path.join(work, "rclone-copy")
    secs, peak, _ = run_rclone(server, ["copy", "bench:" + BUCKET, dest, "--transfers", str(n),
                                        "--checkers", str(n)])
    got = sum(len(fs) for _, _, fs in os.walk(dest))
    rc = dict(seconds=secs, objects=got, ops=len(items) / secs, mbps=data_bytes / secs / 1e6, peak_rss=peak)
    results["rclone_copy"] = rc
    if got != len(items):
        rep.note("rclone copy wrote %d files, expected %d (keys the local fs cannot hold?)" % (got, len(items)))
    rep.add("(b) rclone copy", "%.0f objects/s, %.1f MB/s (%.1f s), peak RSS %s"
            % (rc["ops"], rc["mbps"], secs, fmt_mib(peak)))
    shutil.rmtree(dest, ignore_errors=True)
