"""(a) full backup of the profile bucket (small objects) through the emulated bareos-fd: objects/s, MB/s, peak RSS and PSS of the process tree, CPU per process kind and of the server's daemons"""

import os
import shutil

from harness import plugin_string

from .common import fmt_mib, log
from .fdjob import cpu_comparison, job_thread_share, run_fd_job
from .sampler import TreeSampler
from .server import cpu_seconds


def measure(ctx):
    """(a) into ctx.results: full (its catalog stays in ctx.fdwork for (d))"""
    server = ctx.server
    rep = ctx.rep
    results = ctx.results
    n = ctx.n
    items = ctx.items
    data_bytes = ctx.data_bytes
    spids = ctx.spids
    opts = ctx.opts
    fdwork = ctx.fdwork
    log("\n(a) full backup through the emulated bareos-fd, nb_prefetcher=%d" % n)
    before = cpu_seconds(spids)
    full = run_fd_job(fdwork, plugin_string(server, **opts), level="F")
    after = cpu_seconds(spids)
    full["server_cpu"] = {k: after[k] - before.get(k, 0) for k in after}
    results["full"] = full
    if full["files"] != len(items) or full["bytes"] != data_bytes:
        rep.note("full backup saved %d objects / %d bytes, expected %d / %d"
                 % (full["files"], full["bytes"], len(items), data_bytes))
    full["ops"] = full["files"] / full["seconds"]
    full["mbps"] = full["bytes"] / full["seconds"] / 1e6
    rep.add("(a) plugin full backup", "%.0f objects/s, %.1f MB/s (%.1f s, %d objects, status %s; the "
            "emulator's catalog write after the job, %.1f s, not counted)"
            % (full["ops"], full["mbps"], full["seconds"], full["files"], full["status"],
               full["catalog_seconds"]))
    rep.add("(a) peak RSS, emulator process + all children", "%s (%d processes); peak PSS %s (pages "
            "shared with the fork server counted once, sampled every %.1f s)"
            % (fmt_mib(full["peak_rss"]), full["peak_procs"], fmt_mib(full["peak_pss"]),
               TreeSampler.PSS_EVERY * 0.05))
    rep.add("(a) CPU s per 1000 objects, by process",
            ", ".join("%s %.2f" % (k, v * 1000 / len(items)) for k, v in sorted(full["cpu"].items()))
            + "; " + ", ".join("%s %.2f" % (k, v * 1000 / len(items)) for k, v in sorted(full["server_cpu"].items())))
    rep.add("(a) job thread CPU per object: all / inside plugin calls", "%.3f / %.3f ms (%s)"
            % (job_thread_share(full, full["files"])))
    if "raw" in results:
        rep.add("(a)/(c) client CPU per object", cpu_comparison(full, results["raw"]))
    vol = os.path.join(fdwork, "volumes")
    shutil.rmtree(vol, ignore_errors=True)  # the catalog stays for (d)
