"""Several ``Plugin =`` lines in one FileSet: each is backed up with exactly its own options.

bareos-fd loads one module per job and calls parse_plugin_definition with each line's options
at the FileSet command, then with one line's options before that line's start_backup_file loop
(docs/emulator.md).  Against moto, through the emulated daemon.
"""

import time


from harness import plugin_string, restored_keys
from servers import MotoServer, free_port

from bareos_libcloud import naming

M_FATAL, M_ERROR, M_INFO = 3, 4, 6
YEARS = {"2023/a": b"a23", "2023/b": b"b23" * 1000, "2024/a": b"a24", "2024/c/d": b"d24" * 3000, "other": b"o"}


def ours(result, kind=None):
    return [t for k, t in result.messages if t.startswith("python3-fd-mod: libcloud:") and (kind is None or k == kind)]


def saved(result):
    return {naming.parse_fname(r.fname)[1]: r.read_bytes() for r in result.files if r.cataloged and not r.deleted}


def line(server, bucket, **options):
    options.setdefault("nb_prefetcher", 2)
    return plugin_string(server, buckets_include=bucket, **options)


def test_each_line_saves_its_own_prefix(moto, fd, bucket_name, tmp_path):
    moto.make_bucket(bucket_name, YEARS)
    lines = [line(moto, bucket_name, prefix="2023/"), line(moto, bucket_name, prefix="2024/")]
    result = fd.backup(lines)
    assert result.status == "T", result.messages
    assert saved(result) == {k: v for k, v in YEARS.items() if k != "other"}
    summaries = [t for t in ours(result, M_INFO) if " listed, " in t]
    assert len(summaries) == 2
    assert "Plugin line 1" in summaries[0] and "'2023/'" in summaries[0] and "2 objects listed" in summaries[0]
    assert "Plugin line 2" in summaries[1] and "'2024/'" in summaries[1] and "2 objects listed" in summaries[1]

    where = str(tmp_path / "restore")
    assert fd.restore(where=where).status == "T"
    assert restored_keys(where, bucket_name) == {k: v for k, v in YEARS.items() if k != "other"}


def test_accurate_deletions_and_estimate_work_across_lines(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, YEARS)
    time.sleep(1.1)
    lines = [line(moto, bucket_name, prefix="2023/"), line(moto, bucket_name, prefix="2024/")]
    assert fd.backup(lines, accurate=True).status == "T"
    client = moto.boto3_client()
    client.delete_object(Bucket=bucket_name, Key="2023/a")
    client.delete_object(Bucket=bucket_name, Key="2024/c/d")
    client.put_object(Bucket=bucket_name, Key="2024/new", Body=b"new")
    inc = fd.backup(lines, level="I", accurate=True)
    assert inc.status == "T", inc.messages
    assert saved(inc) == {"2024/new": b"new"}
    assert sorted(naming.parse_fname(f)[1] for f in inc.deleted) == ["2023/a", "2024/c/d"]

    estimate = fd.estimate(lines)
    listed = sorted(naming.parse_fname("/@libcloud/" + text.rsplit(" /@libcloud/", 1)[1])[1]
                    for text in estimate.listing)
    assert listed == ["2023/b", "2024/a", "2024/new"]


def test_the_same_bucket_name_on_two_stores_is_refused(moto, fd, bucket_name):
    other = MotoServer()
    other.start()
    try:
        moto.make_bucket(bucket_name, {"x": b"from the first store"})
        other.make_bucket(bucket_name, {"x": b"from the second store"})
        result = fd.backup([line(moto, bucket_name), line(other, bucket_name)])
    finally:
        other.stop()
    assert result.status == "f"
    fatals = ours(result, M_FATAL)
    assert len(fatals) == 1 and "different object stores" in fatals[0] and repr(bucket_name) in fatals[0]
    assert not [r for r in result.files if r.cataloged]


def test_lines_that_select_the_same_objects_are_refused(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, YEARS)
    result = fd.backup([line(moto, bucket_name, prefix="2024/"), line(moto, bucket_name, prefix="2024/c")])
    assert result.status == "f"
    fatals = ours(result, M_FATAL)
    assert len(fatals) == 1 and "saved twice" in fatals[0]
    assert not [r for r in result.files if r.cataloged]


def test_disjoint_shards_of_one_bucket_are_fine(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, YEARS)
    result = fd.backup([line(moto, bucket_name, shard="1/2"), line(moto, bucket_name, shard="2/2")])
    assert result.status == "T", result.messages
    assert saved(result) == YEARS


def test_a_bad_second_line_fails_the_job_before_anything_is_saved(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, YEARS)
    result = fd.backup([line(moto, bucket_name, prefix="2023/"), line(moto, bucket_name, prefix="2024/",
                                                                      nb_prefetcher=0)])
    assert result.status == "f"
    fatals = ours(result, M_FATAL)
    assert len(fatals) == 1 and "Plugin line 2" in fatals[0] and "nb_prefetcher" in fatals[0]
    assert not [r for r in result.files if r.cataloged]


def test_an_unreachable_second_store_fails_the_job_before_anything_is_saved(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, YEARS)
    closed = line(moto, bucket_name, prefix="2024/").replace(":port=%d:" % moto.port, ":port=%d:" % free_port())
    result = fd.backup([line(moto, bucket_name, prefix="2023/"), closed + ":retries=1"])
    assert result.status == "f"
    fatals = ours(result, M_FATAL)
    assert len(fatals) == 1 and fatals[0].count("Plugin line 2") == 1 and "connection refused" in fatals[0]
    assert not [r for r in result.files if r.cataloged]


def test_a_line_that_selects_nothing_makes_the_job_end_with_warnings(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, YEARS)
    result = fd.backup([line(moto, bucket_name, prefix="2023/"), line(moto, bucket_name, prefix="/2024/")])
    assert result.status == "W", result.messages
    assert saved(result) == {"2023/a": YEARS["2023/a"], "2023/b": YEARS["2023/b"]}
    errors = ours(result, M_ERROR)
    assert len(errors) == 1 and "Plugin line 2" in errors[0] and "selected no object" in errors[0]
    assert "rarely begin with '/'" in errors[0]


def test_a_single_line_that_selects_nothing_ends_with_warnings(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, YEARS)
    result = fd.backup(line(moto, bucket_name, prefix="2025/"))
    assert result.status == "W", result.messages
    errors = ours(result, M_ERROR)
    assert len(errors) == 1 and "selected no object" in errors[0] and "'2025/'" in errors[0]


def test_shards_of_two_kinds_may_share_objects_and_are_refused(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, YEARS)
    result = fd.backup([line(moto, bucket_name, shard="1/2"), line(moto, bucket_name, shard="2/2", shard_by="prefix")])
    assert result.status == "f"
    fatals = ours(result, M_FATAL)
    assert len(fatals) == 1 and "saved twice" in fatals[0] and "shard 2/2 by prefix" in fatals[0]
