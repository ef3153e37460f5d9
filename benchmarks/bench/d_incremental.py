"""(d) a no-change incremental (listing only) after the full, against ``rclone lsf -R``"""

import subprocess

from harness import plugin_string

from .common import BUCKET, NO_MARGIN, log
from .fdjob import run_fd_job
from .rclone import run_rclone


def measure(ctx):
    """(d) into ctx.results: incr, lsf"""
    server = ctx.server
    rep = ctx.rep
    results = ctx.results
    n = ctx.n
    items = ctx.items
    opts = ctx.opts
    fdwork = ctx.fdwork
    log("\n(d) no-change incremental (plain, not accurate) vs rclone lsf -R")
    inc = run_fd_job(fdwork, plugin_string(server, **dict(opts, **NO_MARGIN)), level="I")
    inc["ops"] = len(items) / inc["seconds"]
    results["incr"] = inc
    if inc["files"] != 0:
        rep.note("the no-change incremental saved %d objects" % inc["files"])
    rep.add("(d) plugin no-change incremental", "%.0f listed objects/s (%.2f s, %d objects, status %s)"
            % (inc["ops"], inc["seconds"], len(items), inc["status"]))
    best = None
    for extra in ([], ["--fast-list"]):
        secs, peak, out = run_rclone(server, ["lsf", "-R"] + extra + ["--checkers", str(n), "bench:" + BUCKET],
                                     stdout=subprocess.PIPE)
        files = sum(1 for l in out.splitlines() if l and not l.endswith("/"))
        rep.add("(d) rclone lsf -R %s" % " ".join(extra), "%.0f objects/s (%.2f s, %d files)"
                % (len(items) / secs, secs, files))
        if best is None or secs < best[0]:
            best = (secs, " ".join(["lsf", "-R"] + extra))
    results["lsf"] = dict(seconds=best[0], ops=len(items) / best[0], cmd=best[1])
