"""(c) the server's raw limit: N processes doing signed GETs over the same objects (the fastest of three clients on a sample, then the whole bucket); then the ceiling of any plugin: the same loop also doing what the emulated daemon does with every byte"""

import random

from .common import BUCKET, SEED, MiB, log
from .raw import DAEMON_WORK, RAW_KINDS, raw_parallel_get
from .server import cpu_seconds


def measure(ctx):
    """(c) into ctx.results: raw, raw_ceiling"""
    args = ctx.args
    server = ctx.server
    rep = ctx.rep
    results = ctx.results
    n = ctx.n
    items = ctx.items
    keys = ctx.keys
    spids = ctx.spids
    work = ctx.work
    log("\n(c) raw parallel GET, %d processes" % n)
    rnd = random.Random(SEED)
    sample = rnd.sample(keys, min(args.raw_sample, len(keys)))
    sample = [k for k in sample if dict(items).get(k, 0) < 8 * MiB] or sample
    tries = []
    for kind in RAW_KINDS:
        r = raw_parallel_get(server, BUCKET, sample, n, kind)
        tries.append(r)
        rep.add("raw GET sample (%d objects), %s" % (len(sample), kind), "%.0f objects/s" % r["ops"])
    best = max(tries, key=lambda r: r["ops"])["kind"]
    before = cpu_seconds(spids)
    raw = raw_parallel_get(server, BUCKET, keys, n, best)
    after = cpu_seconds(spids)
    raw["server_cpu"] = sum(after[k] - before.get(k, 0) for k in after)
    results["raw"] = raw
    rep.add("(c) raw parallel GET, whole bucket, %s" % best,
            "%.0f objects/s, %.1f MB/s (%.1f s); CPU per object: the GET loop %.3f ms, the server %.3f ms"
            % (raw["ops"], raw["mbps"], raw["seconds"], raw["client_cpu"] * 1000 / raw["objects"],
               raw["server_cpu"] * 1000 / raw["objects"]))
    ceiling = raw_parallel_get(server, BUCKET, keys, n, DAEMON_WORK, volume_dir=work)
    results["raw_ceiling"] = ceiling
    rep.add("(c) ceiling: the same loop, also hashing (MD5) and writing every byte to a volume file, "
            "as the emulated daemon does with what a plugin hands it",
            "%.0f objects/s (%.1f s), %.2fx of the raw loop; CPU per object %.3f ms"
            % (ceiling["ops"], ceiling["seconds"], ceiling["ops"] / raw["ops"],
               ceiling["client_cpu"] * 1000 / ceiling["objects"]))
