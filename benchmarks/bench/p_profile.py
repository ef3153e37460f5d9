"""--pyspy DIR: one more full backup of the profile bucket under ``py-spy record --subprocesses`` (not timed), its summary written to DIR/pyspy-summary.md"""

import os
import shutil

from harness import plugin_string

from .common import log
from .fdjob import run_fd_job
from .pyspy import summarize_pyspy


def measure(ctx):
    """the profiled full backup"""
    args = ctx.args
    server = ctx.server
    n = ctx.n
    opts = ctx.opts
    work = ctx.work
    os.makedirs(args.pyspy, exist_ok=True)
    raw_path = os.path.join(os.path.abspath(args.pyspy), "pyspy-full.txt")
    log("\nprofiling one more full backup with py-spy -> %s" % raw_path)
    wd = os.path.join(work, "fd-prof")
    prof = run_fd_job(wd, plugin_string(server, **opts), level="F", pyspy=raw_path)
    shutil.rmtree(wd, ignore_errors=True)
    summary = summarize_pyspy(raw_path, prof["files"])
    with open(os.path.join(args.pyspy, "pyspy-summary.md"), "w") as f:
        f.write("# py-spy of one full backup (%d objects, nb_prefetcher=%d, %.1f s under the profiler)\n\n%s\n"
                % (prof["files"], n, prof["seconds"], summary))
    log(summary)
