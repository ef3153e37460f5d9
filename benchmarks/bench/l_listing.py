"""(l) RSS of listing-only no-change incrementals on benchmarks/listing_server.py: 10k keys against --synthetic-keys."""

import os
import shutil
import tempfile
import time

from .common import NO_MARGIN, fmt_mib, log
from .fdjob import run_fd_job
from .report import Report, md_head, md_tables, prepend_md
from .sampler import short_role


def listing_main(args, command, started, load_start):
    """--only l: RSS of listing-only no-change incrementals, 10k keys against --synthetic-keys (1M)."""
    from harness import plugin_string
    from listing_server import ListingServer

    counts = (10000, args.synthetic_keys)
    rep = Report()
    work = tempfile.mkdtemp(prefix="bareos-libcloud-bench-list-")
    results = {}
    try:
        with ListingServer(counts) as server:
            for count in counts:
                wd = os.path.join(work, "fd-%d" % count)
                o = dict(buckets_include=server.bucket(count), nb_prefetcher=args.concurrency)
                log("\n(l) listing-only no-change incremental over %d synthetic keys" % count)
                # an empty Full (prefix matches nothing) so that the emulator's catalog stays empty
                run_fd_job(wd, plugin_string(server, prefix="no-such-prefix/", **o), level="F", job_name="list")
                time.sleep(1.1)
                r = run_fd_job(wd, plugin_string(server, **dict(o, **NO_MARGIN)), level="I", job_name="list")
                shutil.rmtree(wd, ignore_errors=True)
                summary = "%d objects listed, 0 saved" % count
                if r["status"] != "T" or r["files"] or not any(summary in m for m in r["messages"]):
                    rep.note("%d keys: status %s, %d objects saved, messages %s (expected T and '%s')"
                             % (count, r["status"], r["files"], r["messages"], summary))
                results[count] = r
                rep.add("(l) listing-only incremental, %d keys" % count,
                        "%.0f objects/s (%.1f s), peak RSS %s (largest VmHWM per kind: %s)"
                        % (count / r["seconds"], r["seconds"], fmt_mib(r["peak_rss"]),
                           ", ".join("%s %s" % (short_role(k), fmt_mib(v[1]))
                                     for k, v in sorted(r["hwm_by_role"].items()))))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rep.target("RSS listing %d objects / RSS listing 10k" % counts[1],
               results[counts[1]]["peak_rss"] / results[counts[0]]["peak_rss"], 1.2, higher_is_better=False)
    lines = md_head(args, "listing RSS at %d keys (synthetic listing server)" % counts[1], command, started,
                    load_start, "`benchmarks/listing_server.py`")
    lines += [
        "- the server makes up ListObjects answers: empty keys last modified in 2020 (no store here could "
        "take 1M uploads within the run); the listing rate is that server's, the RSS is the plugin's: the "
        "emulator process plus all its children, sampled every 50 ms",
    ] + md_tables(rep)
    if args.write_md:
        prepend_md(args.md, lines)
    return 0
