"""(e) one large object backed up (multipart and single-PUT uploads, with and without Signature=MD5), against one raw GET and the ceiling; its peak RSS against a 16 MiB object's"""

import os
import shutil

from harness import plugin_string

from .common import GiB, LARGE_BUCKET, LARGE_REF_BUCKET, LARGE_SINGLE_BUCKET, fmt_mib, log
from .fdjob import run_fd_job
from .pyspy import summarize_pyspy
from .raw import DAEMON_WORK, raw_parallel_get


def measure(ctx):
    """(e) into ctx.results: large, large_nosig, large_single, large_single_nosig, large_ref, raw_large"""
    args = ctx.args
    server = ctx.server
    rep = ctx.rep
    results = ctx.results
    n = ctx.n
    work = ctx.work
    large_bytes = ctx.large_bytes
    log("\n(e) one %.2f GiB object: backup vs one raw GET" % (large_bytes / GiB))
    o = dict(buckets_include=LARGE_REF_BUCKET, nb_prefetcher=n)
    wd = os.path.join(work, "fd-large-ref")
    ref = run_fd_job(wd, plugin_string(server, **o), level="F")
    shutil.rmtree(wd, ignore_errors=True)
    for bucket, tag, what, signature in (
            (LARGE_BUCKET, "large", "multipart upload, ETag -N: no MD5 check", "MD5"),
            (LARGE_BUCKET, "large_nosig", "multipart upload, ETag -N: no MD5 check", None),
            (LARGE_SINGLE_BUCKET, "large_single", "single PUT, plain-MD5 ETag: MD5 verified", "MD5"),
            (LARGE_SINGLE_BUCKET, "large_single_nosig", "single PUT, plain-MD5 ETag: MD5 verified", None)):
        wd = os.path.join(work, "fd-" + tag)
        o["buckets_include"] = bucket
        big = run_fd_job(wd, plugin_string(server, **o), level="F", signature=signature)
        shutil.rmtree(wd, ignore_errors=True)
        big["mbps"] = big["bytes"] / big["seconds"] / 1e6
        big["stream_mbps"] = big["bytes"] / big["streaming_seconds"] / 1e6
        if big["bytes"] != large_bytes:
            rep.note("large backup (%s) saved %d bytes, expected %d" % (what, big["bytes"], large_bytes))
        results[tag] = big
        fileset = "FileSet Signature=MD5" if signature else "FileSet without Signature"
        rep.add("(e) plugin backup of the large object, %s, %s" % (what, fileset),
                "%.1f MB/s (%.1f s) for the job, %.1f MB/s (%.1f s) streamed (IO_OPEN to IO_CLOSE), peak RSS "
                "%s; CPU s: %s; job thread CPU s: all %.2f, inside plugin calls %.2f"
                % (big["mbps"], big["seconds"], big["stream_mbps"], big["streaming_seconds"],
                   fmt_mib(big["peak_rss"]),
                   ", ".join("%s %.1f" % (k, v) for k, v in sorted(big["cpu"].items()) if v >= 0.05),
                   big["job_thread_cpu"], big["plugin_cpu"]))
        if args.pyspy and signature:
            os.makedirs(args.pyspy, exist_ok=True)
            raw_path = os.path.join(os.path.abspath(args.pyspy), "pyspy-%s.txt" % tag)
            log("profiling one more backup of the large object (%s) with py-spy -> %s" % (what, raw_path))
            prof = run_fd_job(wd, plugin_string(server, **o), level="F", pyspy=raw_path)
            shutil.rmtree(wd, ignore_errors=True)
            summary = summarize_pyspy(raw_path, prof["files"])
            with open(os.path.join(args.pyspy, "pyspy-%s-summary.md" % tag), "w") as f:
                f.write("# py-spy of one backup of the large object (%s, nb_prefetcher=%d, %.1f s under the "
                        "profiler)\n\n%s\n" % (what, n, prof["seconds"], summary))
    results["large_ref"] = ref
    rep.add("(e) plugin backup of one 16 MiB object (memory reference)", "peak RSS %s"
            % fmt_mib(ref["peak_rss"]))
    tries = []
    for kind in ("sigv4+http.client", "boto3"):
        r = raw_parallel_get(server, LARGE_BUCKET, ["large/blob.bin"], 1, kind)
        tries.append(r)
        rep.add("(e) one raw GET of the large object, %s" % kind, "%.1f MB/s (%.1f s)" % (r["mbps"], r["seconds"]))
    results["raw_large"] = max(tries, key=lambda r: r["mbps"])
    ceiling = raw_parallel_get(server, LARGE_BUCKET, ["large/blob.bin"], 1, DAEMON_WORK, volume_dir=work)
    rep.add("(e) ceiling: one raw GET that also hashes (MD5) and writes every byte to a volume file, "
            "as the emulated daemon does with Signature=MD5", "%.1f MB/s (%.1f s), %.2fx of the raw GET"
            % (ceiling["mbps"], ceiling["seconds"], ceiling["mbps"] / results["raw_large"]["mbps"]))
