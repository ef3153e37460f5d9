"""(f) fixed memory: peak RSS and PSS of the job's processes when objects hold no memory (empty
objects), at the run's concurrency and at 64 transfers in flight."""

import os
import shutil

from harness import plugin_string

from .common import fmt_mib, log
from .fdjob import run_fd_job
from .sampler import short_role

FIXED_BUCKET = "fixed-mem"
FIXED_OBJECTS = 200
#: The issue's bound on the fixed memory of the job's processes, whatever the concurrency.
FIXED_GOAL_MIB = 150


def measure(ctx):
    """(f) into ctx.results["fixed"]: {concurrency: run result}"""
    log("\n(f) fixed memory: a full of %d empty objects" % FIXED_OBJECTS)
    runs = {}
    for n in sorted({ctx.n, 64}):
        workdir = os.path.join(ctx.work, "fixed-%d" % n)
        res = run_fd_job(workdir, plugin_string(ctx.server, buckets_include=FIXED_BUCKET, nb_prefetcher=n), level="F")
        shutil.rmtree(workdir, ignore_errors=True)
        runs[n] = res
        roles = ", ".join("%s x%d %s" % (short_role(role), procs, fmt_mib(top))
                          for role, (procs, top, _, _) in sorted(res["hwm_by_role"].items()))
        ctx.rep.add("(f) fixed memory, nb_prefetcher=%d" % n,
                    "peak RSS %s in %d processes, peak PSS %s; per process (VmHWM): %s"
                    % (fmt_mib(res["peak_rss"]), res["peak_procs"], fmt_mib(res["peak_pss"]), roles))
    ctx.results["fixed"] = runs
