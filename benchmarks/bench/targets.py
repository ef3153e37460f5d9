"""The targets of a run (ratios with goals) from its results."""

from .common import MiB, log
from .f_fixed import FIXED_GOAL_MIB


def targets(ctx):
    """Adds every target the run's results allow to ctx.rep."""
    rep, results, list_count = ctx.rep, ctx.results, ctx.list_count
    log("\nratios and targets")
    if "full" in results and "rclone_copy" in results:
        rep.target("small objects: full backup / rclone copy (objects/s)",
                   results["full"]["ops"] / results["rclone_copy"]["ops"], 1.0)
    if "full" in results and "raw" in results:
        rep.target("small objects: full backup / raw parallel GET (objects/s)",
                   results["full"]["ops"] / results["raw"]["ops"], 0.8)
        full, raw = results["full"], results["raw"]
        helpers = sum(v for k, v in full["cpu"].items() if not k.startswith("job process"))
        plugin = (full["plugin_cpu"] + helpers) / (full["files"] or 1)
        rep.target("plugin CPU per small object / the plain signed GET loop's",
                   plugin / (raw["client_cpu"] / raw["objects"]), 1.0, higher_is_better=False)
    if "fixed" in results:
        for n, res in sorted(results["fixed"].items()):
            rep.target("fixed memory at nb_prefetcher=%d: peak RSS / %d MiB" % (n, FIXED_GOAL_MIB),
                       res["peak_rss"] / (FIXED_GOAL_MIB * MiB), 1.0, higher_is_better=False)
    if "large" in results:
        for tag, what in (("large", "multipart, no MD5; FileSet Signature=MD5"),
                          ("large_nosig", "multipart, no MD5; FileSet without Signature"),
                          ("large_single", "single PUT, MD5 verified; FileSet Signature=MD5"),
                          ("large_single_nosig", "single PUT, MD5 verified; FileSet without Signature")):
            rep.target("large object (%s): streamed / one raw GET (MB/s)" % what,
                       results[tag]["stream_mbps"] / results["raw_large"]["mbps"], 0.8)
            rep.target("large object (%s): whole job, start-up included / one raw GET (MB/s)" % what,
                       results[tag]["mbps"] / results["raw_large"]["mbps"], 0.8)
        rep.target("large object memory flat: peak RSS 1 large / 1 x 16 MiB",
                   results["large"]["peak_rss"] / results["large_ref"]["peak_rss"], 1.2, higher_is_better=False)
    if "incr" in results:
        rep.target("no-change incremental / rclone %s (objects/s)" % results["lsf"]["cmd"],
                   results["incr"]["ops"] / results["lsf"]["ops"], 1.0)
    if "list_big" in results:
        rep.target("RSS listing %d objects / RSS listing 10k" % list_count,
                   results["list_big"]["peak_rss"] / results["list_10k"]["peak_rss"], 1.2, higher_is_better=False)
        rep.target("listing rate at %d objects: no-change incremental / rclone lsf -R" % list_count,
                   results["list_big"]["ops"] / results["lsf_big"]["ops"], 1.0)
        if list_count < 1000000:
            rep.note("the RSS target names 1M listed objects; %d were uploaded (empty objects, "
                     "--list-objects) to keep the run within minutes" % list_count)
