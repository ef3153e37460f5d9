"""The run of measurements (a) to (f) and (r): one data set, one server, one concurrency."""

import os
import shutil
import tempfile
import time
import types

from . import a_small, b_rclone_copy, c_raw, d_incremental, e_large, f_fixed, p_profile, r_list_rss
from .common import (BUCKET, HERE, LARGE_BUCKET, LARGE_REF_BUCKET, LARGE_REF_BYTES, LARGE_SINGLE_BUCKET,
                     LIST_BIG_BUCKET, LIST_SMALL_BUCKET, SEED, GiB, MiB, log)
from .dataset import build_dataset, read_profiles
from .report import Report, md_head, md_tables, prepend_md
from .server import server_pids, start_server
from .targets import targets
from .uploads import upload_empty_objects, upload_large, upload_objects


def run_main(args, only, command, started, load_start):
    """Everything but (l) and (m): see the package docstring."""
    n = args.concurrency
    tsv = os.path.join(HERE, "size-profiles.tsv")
    profiles, header = read_profiles(tsv)
    items = build_dataset(profiles[args.profile], args.scale)
    data_bytes = sum(s for _, s in items)
    large_bytes = int(args.large_gib * GiB)
    list_count = args.list_objects if "r" in only else 0
    log("data set %s x %.3g: %d objects, %.1f MB (largest %.1f MiB), seed %d; large object %.2f GiB"
        % (args.profile, args.scale, len(items), data_bytes / 1e6, max(s for _, s in items) / MiB, SEED,
           large_bytes / GiB))

    total = data_bytes + (2 * large_bytes + LARGE_REF_BYTES if "e" in only else 0)
    server, server_desc = start_server(args.server, total)
    rep = Report()
    work = tempfile.mkdtemp(prefix="bareos-libcloud-bench-")
    results = {}
    try:
        log("server: %s at %s (up in %.1fs)" % (server_desc, server.endpoint_url, server.start_seconds))
        spids = server_pids(server)
        secs = upload_objects(server, BUCKET, items)
        log("uploaded %d objects in %.1fs (%.0f PUT/s)" % (len(items), secs, len(items) / secs))
        if "e" in only:
            for bucket, mp in ((LARGE_BUCKET, True), (LARGE_SINGLE_BUCKET, False)):
                secs, etag = upload_large(server, bucket, "large/blob.bin", large_bytes, mp)
                log("uploaded the %.2f GiB object (%s) in %.1fs, ETag %s"
                    % (large_bytes / GiB, "multipart" if mp else "single PUT", secs, etag))
            upload_objects(server, LARGE_REF_BUCKET, [("large/ref-16MiB.bin", LARGE_REF_BYTES)])
        if "r" in only:
            secs = upload_empty_objects(server, LIST_SMALL_BUCKET, 10000)
            log("uploaded 10000 empty objects in %.1fs (%.0f PUT/s)" % (secs, 10000 / secs))
            secs = upload_empty_objects(server, LIST_BIG_BUCKET, list_count)
            log("uploaded %d empty objects in %.1fs (%.0f PUT/s)" % (list_count, secs, list_count / secs))
        if "f" in only:
            upload_empty_objects(server, f_fixed.FIXED_BUCKET, f_fixed.FIXED_OBJECTS)
        keys = server.list_keys(BUCKET)
        assert len(keys) == len(items), (len(keys), len(items))
        time.sleep(1.5)  # Last-Modified has one-second resolution: the full starts after it

        opts = dict(buckets_include=BUCKET, nb_prefetcher=n)

        # one context for the measurements: what they read, and where they add their results
        ctx = types.SimpleNamespace(args=args, server=server, rep=rep, results=results, n=n, items=items,
                                    keys=keys, data_bytes=data_bytes, large_bytes=large_bytes, spids=spids,
                                    opts=opts, work=work, fdwork=os.path.join(work, "fd"), list_count=list_count)
        if "c" in only:  # the raw limit first
            c_raw.measure(ctx)
        if "a" in only or "d" in only:
            a_small.measure(ctx)
        if "b" in only:
            b_rclone_copy.measure(ctx)
        if "d" in only:
            d_incremental.measure(ctx)
        shutil.rmtree(ctx.fdwork, ignore_errors=True)
        if "r" in only:
            r_list_rss.measure(ctx)
        if "e" in only:
            e_large.measure(ctx)
        if "f" in only:
            f_fixed.measure(ctx)
        if args.pyspy:  # one more full, under py-spy (not timed)
            p_profile.measure(ctx)
        targets(ctx)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    if args.write_md:
        write_md(args, rep, command, started, server_desc, items, data_bytes, large_bytes, header, results,
                 load_start)
    return 0


def write_md(args, rep, command, started, server_desc, items, data_bytes, large_bytes, header, results,
             load_start):
    title = "%s profile x %g, %s, concurrency %d" % (args.profile, args.scale, args.server, args.concurrency)
    lines = md_head(args, title, command, started, load_start, server_desc)
    lines += [
        "- data set: %d objects, %.1f MB (profile `%s` of `benchmarks/size-profiles.tsv`, counts x %g, "
        "seed %d)%s" % (len(items), data_bytes / 1e6, args.profile, args.scale, SEED,
                        "; large object %.2f GiB" % (large_bytes / GiB) if "large" in results else ""),
        "- plugin: emulated bareos-fd (`tests/fdemu`, writes every byte to a volume file, MD5 per file), "
        "`nb_prefetcher=%d`, other options default; rclone `--transfers %d --checkers %d`; raw GET %d processes"
        % (args.concurrency, args.concurrency, args.concurrency, args.concurrency),
        "- peak RSS: the sum of RSS over the process running the emulator and all its descendants "
        "(job thread, lister, fetch helpers, multiprocessing resource tracker), sampled every 50 ms; "
        "the emulator's own catalog is included, nothing subtracted",
    ]
    lines += md_tables(rep)
    lines += ["", "For context, the original plugin's published figures (from the tsv's header):", ""]
    lines += ["> " + h for h in header]
    prepend_md(args.md, lines)  # newest section first
