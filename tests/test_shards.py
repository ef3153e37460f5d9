"""Shards that split a bucket's listing: ``shard=K/N:shard_by=prefix``.

Each shard lists the top level with a delimiter, then only the top-level prefixes whose hash
falls in it (keys at the top level go to shard 1): the N jobs together list the bucket about
once, where ``shard_by=hash`` (the default) has every shard list all of it.  End to end against
moto (requests counted through the fault proxy), and against benchmarks/listing_server.py for
listings of more than one page of prefixes.
"""

import os
import sys
import time
from urllib.parse import parse_qs


from harness import REPO, plugin_string

from bareos_libcloud import naming
from bareos_libcloud.shards import in_shard, prefix_shard, top_level

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
from listing_server import ListingServer  # noqa: E402

OBJECTS = {"%s/%d" % (top, i): b"%s%d" % (top.encode(), i)
           for top in ("alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta") for i in range(3)}
OBJECTS.update({"deep/er/1": b"d1", "deep/er/2": b"d2", "root-1": b"r1", "root-2": b"r2"})


def spread(bucket_name, keys, count, prefix=""):
    """``bucket_name`` or a variant of it whose top-level prefixes leave none of ``count`` prefix
    shards empty (the shard of a prefix hashes the bucket's name with it, and the fixture's names
    are random: with 9 prefixes over 3 shards, one in 20 names left a shard empty, and its job
    ends "selected no object at all", as it should)."""
    for attempt in range(200):
        name = bucket_name if attempt == 0 else "%s-%d" % (bucket_name[:56], attempt)
        if all(any(in_shard(name, key, (k, count), "prefix", prefix) for key in keys if key.startswith(prefix))
               for k in range(1, count + 1)):
            return name
    raise AssertionError("no bucket name spreads these keys over %d shards" % count)


def saved(result):
    return {naming.parse_fname(r.fname)[1]: r.read_bytes() for r in result.files if r.cataloged and not r.deleted}


def listings(proxy, bucket):
    """The listing parameters of each listing request of ``bucket`` through the proxy."""
    wanted = ("prefix", "delimiter", "marker", "encoding-type")
    return [{name: value for name, value in parse_qs(e.query, keep_blank_values=True).items() if name in wanted}
            for e in proxy.log if e.method == "GET" and e.path.rstrip("/") == "/" + bucket]


def test_top_level_and_membership():
    assert top_level("a/b/c") == "a/" and top_level("root") is None
    assert top_level("data/x/1", "data/") == "data/x/" and top_level("data/z", "data/") is None
    assert top_level("dat/x", "da") == "dat/"  # as S3 folds keys below a prefix that is no folder
    assert prefix_shard("b", None, 4) == 1
    for key in OBJECTS:
        owners = [k for k in range(1, 5) if in_shard("b", key, (k, 4), "prefix")]
        assert len(owners) == 1
        siblings = [other for other in OBJECTS if top_level(other) == top_level(key)]
        assert all(in_shard("b", other, (owners[0], 4), "prefix") for other in siblings)


def test_prefix_shards_cover_the_bucket_once_and_list_each_prefix_once(moto, proxy, fd, bucket_name):
    bucket_name = spread(bucket_name, OBJECTS, 3)
    moto.make_bucket(bucket_name, OBJECTS)
    parts, listed_prefixes = [], []
    for k in (1, 2, 3):
        proxy.clear()
        result = fd.backup(plugin_string(moto, via=proxy, buckets_include=bucket_name, nb_prefetcher=2,
                                         shard="%d/3" % k, shard_by="prefix"), job_name="shard-%d" % k)
        assert result.status == "T", result.messages
        parts.append(saved(result))
        queries = listings(proxy, bucket_name)
        assert [q for q in queries if q.get("delimiter") == ["/"]] == [{"delimiter": ["/"], "encoding-type": ["url"]}]
        listed_prefixes += [q["prefix"][0] for q in queries if "delimiter" not in q]
    union = {}
    for part in parts:
        assert not set(part) & set(union)  # disjoint
        union.update(part)
    assert union == OBJECTS
    assert {"root-1", "root-2"} <= set(parts[0])  # top-level keys: shard 1
    assert sorted(listed_prefixes) == sorted({top_level(key) for key in OBJECTS if "/" in key})  # once each
    assert all(part for part in parts), "9 prefixes over 3 shards: none should be empty here"


def test_prefix_shards_are_stable_so_accurate_incrementals_work(moto, fd, bucket_name):
    """An object stays in the shard of its top-level prefix: each shard's accurate incremental
    saves what changed in its prefixes, records deletions there, and nothing else."""
    bucket_name = spread(bucket_name, OBJECTS, 3)
    moto.make_bucket(bucket_name, OBJECTS)
    plugins = {k: plugin_string(moto, buckets_include=bucket_name, nb_prefetcher=2, shard="%d/3" % k,
                                shard_by="prefix", incremental_margin=0) for k in (1, 2, 3)}
    owner = {}
    for k, plugin in plugins.items():
        full = fd.backup(plugin, accurate=True, job_name="shard-%d" % k)
        assert full.status == "T", full.messages
        owner.update({key: k for key in saved(full)})
    time.sleep(1.1)
    client = moto.boto3_client()
    client.put_object(Bucket=bucket_name, Key="beta/new", Body=b"new")
    client.delete_object(Bucket=bucket_name, Key="gamma/0")
    for k, plugin in plugins.items():
        inc = fd.backup(plugin, level="I", accurate=True, job_name="shard-%d" % k)
        assert inc.status == "T", inc.messages
        assert saved(inc) == ({"beta/new": b"new"} if owner["beta/0"] == k else {})
        assert inc.deleted == ([naming.object_fname(bucket_name, "gamma/0")] if owner["gamma/1"] == k else [])


def test_prefix_shards_below_a_prefix(moto, fd, bucket_name):
    objects = {"data/x/1": b"1", "data/y/2": b"2", "data/z": b"z", "data/w/3": b"3", "other/q": b"q"}
    moto.make_bucket(bucket_name, objects)
    union = {}
    for k in (1, 2):
        result = fd.backup(plugin_string(moto, buckets_include=bucket_name, nb_prefetcher=2, prefix="data/",
                                         shard="%d/2" % k, shard_by="prefix"), job_name="p%d" % k)
        assert result.status in "TW", result.messages  # a shard may select nothing
        part = saved(result)
        assert not set(part) & set(union)
        union.update(part)
        if k == 1:
            assert "data/z" in part
    assert union == {k: v for k, v in objects.items() if k.startswith("data/")}


def test_many_pages_of_prefixes_are_listed_once_in_all():
    """More top-level prefixes than a page holds (1000): the delimiter listing goes on from its
    NextMarker.  Two prefix shards list the bucket in about as many requests as one job; two hash
    shards list it twice."""
    from fdemu import FileDaemon as Daemon
    import tempfile

    bucket = "tree-2400-1100-50"
    with ListingServer(trees=[bucket]) as server, tempfile.TemporaryDirectory() as work:
        def estimate(**options):
            fd = Daemon(os.path.join(work, "fd-%d" % len(os.listdir(work))))
            result = fd.estimate(plugin_string(server, buckets_include=bucket, **options))
            assert result.status == "T", result.messages
            return {line.rsplit(bucket + "/", 1)[1] for line in result.listing}

        whole = estimate()
        assert len(whole) == 2450
        flat_once = server.requests[(bucket, "flat")]
        assert flat_once == 3
        server.requests.clear()
        one, two = estimate(shard="1/2", shard_by="prefix"), estimate(shard="2/2", shard_by="prefix")
        assert not one & two and one | two == whole
        assert {key for key in one if "/" not in key} == {key for key in whole if "/" not in key}
        assert server.requests[(bucket, "delimiter")] == 2 * 2  # 1150 entries: two pages per shard
        assert server.requests[(bucket, "flat")] == 1100  # each prefix once (one page each)
        server.requests.clear()
        estimate(shard="1/2"), estimate(shard="2/2")
        assert server.requests[(bucket, "flat")] == 2 * flat_once


def test_bad_shard_by_is_refused(moto, fd):
    result = fd.backup(plugin_string(moto, shard_by="prefix"))
    fatals = [t for t in result.texts(3) if t.startswith("python3-fd-mod: libcloud:")]
    assert result.status == "f" and len(fatals) == 1 and "shard_by=prefix needs shard=K/N" in fatals[0]


def test_prefix_shards_on_each_server(s3, fd, bucket_name):
    """The same on radosgw: its delimiter listing folds the keys as S3 does."""
    bucket_name = spread(bucket_name, OBJECTS, 3)
    s3.make_bucket(bucket_name, OBJECTS)
    union = {}
    for k in (1, 2, 3):
        result = fd.backup(plugin_string(s3, buckets_include=bucket_name, nb_prefetcher=2, shard="%d/3" % k,
                                         shard_by="prefix"), job_name="shard-%d" % k)
        assert result.status == "T", result.messages
        part = saved(result)
        assert not set(part) & set(union)
        union.update(part)
        assert all(in_shard(bucket_name, key, (k, 3), "prefix") for key in part)
    assert union == OBJECTS
