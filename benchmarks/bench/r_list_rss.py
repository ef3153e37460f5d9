"""(r) RSS of a listing-only no-change incremental over 10k objects against as many as --list-objects"""

import os
import shutil
import subprocess
import time

from harness import plugin_string

from .common import LIST_BIG_BUCKET, LIST_SMALL_BUCKET, NO_MARGIN, fmt_mib, log
from .fdjob import run_fd_job
from .rclone import run_rclone


def measure(ctx):
    """(r) into ctx.results: list_10k, list_big, lsf_big"""
    server = ctx.server
    rep = ctx.rep
    results = ctx.results
    n = ctx.n
    work = ctx.work
    list_count = ctx.list_count
    log("\n(r) RSS of a listing-only no-change incremental, 10k vs %d objects" % list_count)
    for bucket, count, tag in ((LIST_SMALL_BUCKET, 10000, "10k"), (LIST_BIG_BUCKET, list_count, "big")):
        wd = os.path.join(work, "fd-list-" + tag)
        o = dict(buckets_include=bucket, nb_prefetcher=n)
        # an empty Full (prefix matches nothing) so that the emulator's catalog stays empty
        run_fd_job(wd, plugin_string(server, prefix="no-such-prefix/", **o), level="F", job_name="list")
        time.sleep(1.1)
        r = run_fd_job(wd, plugin_string(server, **dict(o, **NO_MARGIN)), level="I", job_name="list")
        r["ops"] = count / r["seconds"]
        results["list_" + tag] = r
        rep.add("(r) listing-only incremental, %d objects" % count,
                "%.0f objects/s (%.1f s), peak RSS %s" % (r["ops"], r["seconds"], fmt_mib(r["peak_rss"])))
        shutil.rmtree(wd, ignore_errors=True)
    secs, peak, out = run_rclone(server, ["lsf", "-R", "--checkers", str(n), "bench:" + LIST_BIG_BUCKET],
                                 stdout=subprocess.PIPE)
    files = sum(1 for l in out.splitlines() if l and not l.endswith("/"))
    results["lsf_big"] = dict(seconds=secs, ops=list_count / secs)
    rep.add("(r) rclone lsf -R, %d objects" % list_count, "%.0f objects/s (%.1f s, %d files), peak RSS %s"
            % (list_count / secs, secs, files, fmt_mib(peak)))
