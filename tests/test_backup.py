"""Backups and restores through the emulated bareos-fd against moto's S3 server.

Every test compares what Bareos stored or what a restore wrote with the bucket itself.
"""

import os
import sys
import time

import pytest

from faultproxy import FaultProxy
from harness import MiB, bucket_mtimes, bucket_objects, plugin_string, restored_keys
from privateca import private_ca

from bareos_libcloud import naming

SMALL = {"a.txt": b"hello", "dir/b.bin": b"B" * 5000, "dir/sub/c": b"c" * 70000, "empty": b"", "sp ace+x": b"s"}


def fname(bucket, key):
    return naming.object_fname(bucket, key)


def plugin_fatals(result):
    """The plugin's own M_FATAL messages (the emulated core adds its own after a fatal)."""
    return [t for t in result.texts(3) if t.startswith("python3-fd-mod: libcloud:")]


def saved(result):
    """``{fname: FileRecord}`` of the objects a job stored with data."""
    return {rec.fname: rec for rec in result.files if rec.cataloged and not rec.deleted}


def opts(**extra):
    base = {"nb_prefetcher": 3, "prefetch_size": "1M"}
    base.update(extra)
    return base


def test_full_backup_then_restore_gives_the_bucket_back(moto, fd, bucket_name, tmp_path):
    objects = dict(SMALL, **{"big/one": os.urandom(3 * MiB + 17), "big/two": os.urandom(MiB)})
    moto.make_bucket(bucket_name, objects)
    result = fd.backup(plugin_string(moto, buckets_include=bucket_name, **opts()))
    assert result.status == "T", result.messages
    stored = saved(result)
    assert set(stored) == {fname(bucket_name, k) for k in objects}
    for key, data in objects.items():
        assert stored[fname(bucket_name, key)].read_bytes() == data
        assert stored[fname(bucket_name, key)].statp["st_size"] == len(data)
    assert any("7 objects listed, 7 saved" in text for text in result.texts())

    where = str(tmp_path / "restore")
    restore = fd.restore(where=where)
    assert restore.status == "T", restore.messages
    assert restored_keys(where, bucket_name) == objects
    mtimes = bucket_mtimes(moto, bucket_name)
    for key in objects:
        path = os.path.join(where, "@libcloud", bucket_name, *key.split("/"))
        assert int(os.stat(path).st_mtime) == mtimes[key]


@pytest.mark.parametrize("prefetch_size", ["8M", "64K"], ids=["prefetched", "streamed"])
def test_a_fileset_with_sparse_restores_the_zero_blocks_bareos_skipped(moto, fd, bucket_name, tmp_path,
                                                                       prefetch_size):
    """With sparse=yes Bareos does not store all-zero blocks (it reads 8 bytes less per IO_READ
    for the offset in front of each block) and seeks over them on restore (IO_SEEK)."""
    block = 262144 - 8
    objects = {
        "disk.img": os.urandom(1000) + bytes(5 * block) + os.urandom(3000),  # zero blocks inside
        "zeros": bytes(3 * block + 77),
        "plain": os.urandom(block + 5),
        "empty": b"",
    }
    moto.make_bucket(bucket_name, objects)
    sparse_flags = bytearray.fromhex("02c0000800")
    sparse_flags[0] |= 1 << 5  # FO_SPARSE
    result = fd.backup(plugin_string(moto, buckets_include=bucket_name, prefetch_size=prefetch_size),
                       fileset_options=bytes(sparse_flags))
    assert result.status == "T", result.messages
    records = saved(result)
    stored = {key: sum(records[fname(bucket_name, key)].record_sizes()) for key in objects}
    assert stored["disk.img"] < len(objects["disk.img"]) - 3 * block  # blocks really skipped
    assert stored["zeros"] < len(objects["zeros"])
    for key in ("disk.img", "plain"):  # whole blocks, also where a 256 KiB chunk has a tail
        sizes = list(records[fname(bucket_name, key)].record_sizes())
        assert set(sizes[:-1]) == {block + 8} and sizes[-1] <= block + 8, (key, sizes)
    for key, data in objects.items():
        assert records[fname(bucket_name, key)].read_bytes() == data

    where = str(tmp_path / "restore")
    restore = fd.restore(where=where)
    assert restore.status == "T", restore.messages
    assert restored_keys(where, bucket_name) == objects


def test_large_objects_are_read_in_256k_pieces(moto, fd, bucket_name):
    data = os.urandom(2 * MiB + 5)
    moto.make_bucket(bucket_name, {"big": data})
    result = fd.backup(plugin_string(moto, buckets_include=bucket_name, prefetch_size="64K", nb_prefetcher=1))
    record = saved(result)[fname(bucket_name, "big")]
    assert record.read_bytes() == data
    assert list(record.record_sizes()) == [262144] * 8 + [5]


def test_statp_is_last_modified_in_utc(moto, fd, bucket_name, monkeypatch):
    moto.make_bucket(bucket_name, {"k": b"x"})
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        result = fd.backup(plugin_string(moto, buckets_include=bucket_name, **opts()))
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    statp = saved(result)[fname(bucket_name, "k")].statp
    assert statp["st_mtime"] == statp["st_ctime"] == bucket_mtimes(moto, bucket_name)["k"]
    assert statp["st_mode"] == 0o100640 and statp["st_nlink"] == 1


def _change_bucket(moto, bucket):
    client = moto.boto3_client()
    client.put_object(Bucket=bucket, Key="new", Body=b"brand new")
    client.put_object(Bucket=bucket, Key="a.txt", Body=b"changed a")
    client.delete_object(Bucket=bucket, Key="dir/b.bin")


def test_incremental_saves_only_new_and_changed_objects(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, SMALL)
    time.sleep(1.1)  # Last-Modified has one-second resolution
    plugin = plugin_string(moto, buckets_include=bucket_name, **opts(incremental_margin=0))
    assert fd.backup(plugin).status == "T"
    time.sleep(1.1)  # Last-Modified has one-second resolution
    _change_bucket(moto, bucket_name)
    inc = fd.backup(plugin, level="I")
    assert inc.status == "T", inc.messages
    assert set(saved(inc)) == {fname(bucket_name, "new"), fname(bucket_name, "a.txt")}
    assert saved(inc)[fname(bucket_name, "a.txt")].read_bytes() == b"changed a"
    # Without accurate mode Bareos records no deletions: the deleted object stays current.
    state = fd.current_state()
    assert fname(bucket_name, "dir/b.bin") in state
    assert state[fname(bucket_name, "a.txt")].read_bytes() == b"changed a"


def test_accurate_incremental_records_deletions(moto, fd, bucket_name, tmp_path):
    moto.make_bucket(bucket_name, SMALL)
    time.sleep(1.1)
    plugin = plugin_string(moto, buckets_include=bucket_name, **opts())
    assert fd.backup(plugin, accurate=True).status == "T"
    time.sleep(1.1)
    _change_bucket(moto, bucket_name)
    inc = fd.backup(plugin, level="I", accurate=True)
    assert inc.status == "T", inc.messages
    assert set(saved(inc)) == {fname(bucket_name, "new"), fname(bucket_name, "a.txt")}
    assert inc.deleted == [fname(bucket_name, "dir/b.bin")]
    assert any("unchanged" in t and "3 unchanged" in t for t in inc.texts())

    where = str(tmp_path / "restore")
    assert fd.restore(where=where).status == "T"
    assert restored_keys(where, bucket_name) == bucket_objects(moto, bucket_name)


def test_accurate_fetches_an_old_object_bareos_has_not_seen(moto, fd, bucket_name):
    """An object older than the since time but unknown to the catalog is saved with its data."""
    moto.make_bucket(bucket_name, {"old": b"old"})
    plugin = plugin_string(moto, buckets_include=bucket_name, **opts())
    assert fd.backup(plugin, accurate=True).status == "T"
    other = bucket_name[:50] + "-two"
    moto.make_bucket(other, {"k": b"was never backed up"})
    time.sleep(1.1)
    both = plugin_string(moto, buckets_include=bucket_name + "," + other, **opts())
    inc = fd.backup(both, level="I", accurate=True, since=int(time.time()) + 5)
    assert inc.status == "T", inc.messages
    assert saved(inc)[fname(other, "k")].read_bytes() == b"was never backed up"
    assert fname(bucket_name, "old") not in saved(inc)


def test_differential_saves_everything_since_the_full(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, SMALL)
    time.sleep(1.1)  # Last-Modified has one-second resolution
    plugin = plugin_string(moto, buckets_include=bucket_name, **opts(incremental_margin=0))
    assert fd.backup(plugin).status == "T"
    time.sleep(1.1)
    moto.boto3_client().put_object(Bucket=bucket_name, Key="first", Body=b"1")
    assert set(saved(fd.backup(plugin, level="I"))) == {fname(bucket_name, "first")}
    time.sleep(1.1)
    moto.boto3_client().put_object(Bucket=bucket_name, Key="second", Body=b"2")
    diff = fd.backup(plugin, level="D")
    assert set(saved(diff)) == {fname(bucket_name, "first"), fname(bucket_name, "second")}


def test_estimate_lists_without_reading(moto, fd, bucket_name):
    """An estimate lists; it never downloads an object (the object store sees no request for one:
    every request goes through a proxy that logs it)."""
    moto.make_bucket(bucket_name, SMALL)
    with FaultProxy(moto.host, moto.port) as proxy:
        result = fd.estimate(plugin_string(moto, via=proxy, buckets_include=bucket_name, **opts()))
        requests = [(e.method, e.path) for e in proxy.log]
    assert result.status == "T", result.messages
    assert result.summary["files"] == len(SMALL)
    assert result.summary["bytes"] == sum(len(v) for v in SMALL.values())
    bucket_level = {"/" + bucket_name, "/" + bucket_name + "/"}
    assert ("GET", "/" + bucket_name) in requests or ("GET", "/" + bucket_name + "/") in requests  # listed
    assert [r for r in requests if r[1] not in bucket_level and r[1] != "/"] == []  # no object asked for
    assert len(result.listing) == len(SMALL)
    assert any(line.endswith(fname(bucket_name, "a.txt")) for line in result.listing)


def test_buckets_include_exclude_and_prefix(moto, fd, bucket_name):
    one, two = bucket_name[:50] + "-one", bucket_name[:50] + "-two"
    moto.make_bucket(one, {"logs/1": b"1", "logs/2": b"2", "data/x": b"x"})
    moto.make_bucket(two, {"logs/3": b"3"})
    result = fd.backup(
        plugin_string(moto, buckets_include="%s,%s,missing-bucket-zz" % (one, two),
                      buckets_exclude=two, prefix="logs/", **opts())
    )
    # A named bucket that does not exist is an error: the job ends "OK -- with warnings".
    assert result.status == "W"
    assert set(saved(result)) == {fname(one, "logs/1"), fname(one, "logs/2")}
    errors = result.texts(4)
    assert len(errors) == 1 and "'missing-bucket-zz'" in errors[0] and "does not exist" in errors[0]


def test_buckets_exclude_without_include(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, {"k": b"v"})
    everything = fd.backup(plugin_string(moto, **opts()))
    assert fname(bucket_name, "k") in saved(everything)
    without = fd.backup(plugin_string(moto, buckets_exclude=bucket_name, **opts()), job_name="other")
    assert not any(f.startswith("/@libcloud/%s/" % bucket_name) for f in saved(without))


@pytest.mark.parametrize(
    "extra, needle",
    [
        ({"nb_prefetcher": "-2"}, "nb_prefetcher=-2"),
        ({"prefetch_size": "lots"}, "prefetch_size='lots'"),
        ({"provider": "NO_SUCH_PROVIDER"}, "provider='NO_SUCH_PROVIDER' is not a libcloud storage provider"),
        ({"queue_size": ""}, "queue_size is empty"),
    ],
)
def test_bad_options_fail_the_job_with_one_fatal_message(moto, fd, bucket_name, extra, needle):
    moto.make_bucket(bucket_name, {"k": b"v"})
    text = plugin_string(moto, buckets_include=bucket_name, **extra)
    if "provider" in extra:  # the first value wins: put the bad provider first
        text = text.replace(":provider=", ":provider=%s:x_=" % extra["provider"], 1)
    result = fd.backup(text)
    assert result.status == "f"
    fatals = plugin_fatals(result)
    assert len(fatals) == 1 and needle in fatals[0], result.messages
    assert not result.files


def test_unreachable_host_fails_at_start(moto, fd):
    from servers import free_port

    text = plugin_string(moto).replace(":port=%d" % moto.port, ":port=%d" % free_port())
    result = fd.backup(text + ":timeout=5")
    assert result.status == "f"
    fatals = plugin_fatals(result)
    assert len(fatals) == 1 and "cannot connect to the object store at 127.0.0.1" in fatals[0], fatals


def test_tls_failure_and_unreadable_credentials_fail_at_start(moto, fd, tmp_path):
    tls = fd.backup(plugin_string(moto, retries=1).replace(":secure=false", ":secure=true"))
    assert tls.status == "f"
    assert [t for t in plugin_fatals(tls) if "TLS" in t], tls.messages
    missing = str(tmp_path / "no-such-credentials")
    creds = fd.backup(plugin_string(moto, credentials_file=missing), job_name="creds")
    assert creds.status == "f"
    fatals = plugin_fatals(creds)
    assert len(fatals) == 1 and "credentials_file" in fatals[0] and "cannot be read" in fatals[0]


def test_tls_to_a_server_signed_by_a_private_ca(moto, fd, bucket_name, tmp_path):
    """secure=true to a TLS front whose certificate a private CA signed: with ca_file naming that
    CA, small objects (prefetchers) and a large one (read by the job thread) arrive byte for byte;
    without it the job fails at its start, naming TLS."""
    ca_file, context = private_ca(tmp_path)
    objects = {"small": os.urandom(3000), "dir/big": os.urandom(3 * MiB + 1)}
    moto.make_bucket(bucket_name, objects)
    with FaultProxy(moto.host, moto.port, tls=context, keep_client_alive=True) as front:
        plugin = plugin_string(moto, via=front, buckets_include=bucket_name, retries=1, debug="yes",
                               **opts()).replace(":secure=false", ":secure=true")
        untrusted = fd.backup(plugin, job_name="untrusted")
        assert untrusted.status == "f"
        assert [t for t in plugin_fatals(untrusted) if "TLS certificate verification failed" in t], untrusted.messages

        result = fd.backup(plugin + ":ca_file=" + ca_file)
        assert result.status == "T", result.messages
        assert {rec.fname: rec.read_bytes() for rec in saved(result).values()} == {
            fname(bucket_name, key): data for key, data in objects.items()}
        debug = " ".join(info for name, info in result.calls if name == "bareosfd.DebugMessage")
        assert bucket_name in debug and "go through the fetch helpers" not in debug
        assert {e.header("Range") for e in front.entries(method="GET", match="/%s/dir/big" % bucket_name)} == {None}

        # An interpreter whose ssl module cannot be imported (the job's, not the helpers'): the
        # large object goes through a fetch helper instead, still over TLS.
        with pytest.MonkeyPatch.context() as patch:
            patch.setitem(sys.modules, "ssl", None)
            no_ssl = fd.backup(plugin + ":ca_file=" + ca_file, job_name="no-ssl")
        assert no_ssl.status == "T", no_ssl.messages
        assert {rec.fname: rec.read_bytes() for rec in saved(no_ssl).values()} == {
            fname(bucket_name, key): data for key, data in objects.items()}
        debug = " ".join(info for name, info in no_ssl.calls if name == "bareosfd.DebugMessage")
        assert "large objects go through the fetch helpers: the ssl module cannot be imported" in debug


@pytest.mark.parametrize("python", ["/bin/false", "/nonexistent/python3"])
def test_an_interpreter_that_cannot_run_helpers_fails_the_job_naming_it(moto, fd, bucket_name, python):
    moto.make_bucket(bucket_name, {"k": b"v"})
    result = fd.backup(plugin_string(moto, buckets_include=bucket_name, python=python))
    assert result.status == "f"
    fatals = plugin_fatals(result)
    assert len(fatals) == 1 and "interpreter %s (option python=)" % python in fatals[0], fatals


def test_restore_honours_replace(moto, fd, bucket_name, tmp_path):
    moto.make_bucket(bucket_name, {"k": b"from the backup"})
    assert fd.backup(plugin_string(moto, buckets_include=bucket_name, **opts())).status == "T"
    where = str(tmp_path / "r")
    target = os.path.join(where, "@libcloud", bucket_name, "k")
    os.makedirs(os.path.dirname(target))
    backup_mtime = bucket_mtimes(moto, bucket_name)["k"]

    def put_local(mtime):
        with open(target, "wb") as handle:
            handle.write(b"local copy")
        os.utime(target, (mtime, mtime))

    put_local(backup_mtime + 100)
    fd.restore(where=where, replace="never")
    assert open(target, "rb").read() == b"local copy"
    fd.restore(where=where, replace="ifnewer")  # the local copy is newer: kept
    assert open(target, "rb").read() == b"local copy"
    fd.restore(where=where, replace="ifolder")  # the backup is older: replaces
    assert open(target, "rb").read() == b"from the backup"
    put_local(backup_mtime - 100)
    fd.restore(where=where, replace="ifnewer")
    assert open(target, "rb").read() == b"from the backup"
    put_local(backup_mtime - 100)
    fd.restore(where=where, replace="always")
    assert open(target, "rb").read() == b"from the backup"


def test_restore_with_empty_where_is_refused(moto, fd, bucket_name, tmp_path, monkeypatch):
    moto.make_bucket(bucket_name, {"k": b"v", "j": b"w"})
    assert fd.backup(plugin_string(moto, buckets_include=bucket_name, **opts())).status == "T"
    cwd = tmp_path / "cwd"  # where a relative (empty) where would land
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    result = fd.restore(where="")
    assert os.listdir(cwd) == [] and sorted(os.listdir(tmp_path)) == ["cwd", "fd"]
    assert not os.path.exists("/@libcloud")  # the objects' own names (empty where: ofname == fname)
    assert result.status == "f"
    fatals = plugin_fatals(result)
    assert len(fatals) == 1 and "where=" in fatals[0]


def test_a_key_that_is_also_a_folder(moto, fd, bucket_name, tmp_path):
    objects = {"a": b"file a", "a/b": b"file a/b", "dir/": b"", "dir/x": b"x", "m/": b"marker with data"}
    moto.make_bucket(bucket_name, objects)
    assert fd.backup(plugin_string(moto, buckets_include=bucket_name, **opts())).status == "T"
    where = str(tmp_path / "r")
    assert fd.restore(where=where).status == "T"
    base = os.path.join(where, "@libcloud", bucket_name)
    assert open(os.path.join(base, "a%obj"), "rb").read() == b"file a"
    assert open(os.path.join(base, "a", "b"), "rb").read() == b"file a/b"
    assert open(os.path.join(base, "m%2F"), "rb").read() == b"marker with data"
    assert restored_keys(where, bucket_name) == objects
    # Restoring only "a" afterwards lands in the same place, whatever the order.
    again = str(tmp_path / "r2")
    assert fd.restore(where=again, files=[fname(bucket_name, "a/b"), fname(bucket_name, "a")]).status == "T"
    assert restored_keys(again, bucket_name) == {"a": b"file a", "a/b": b"file a/b"}


def test_two_jobs_in_a_row_and_secrets_never_shown(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, SMALL)
    plugin = plugin_string(moto, buckets_include=bucket_name, debug="yes", **opts())
    first = fd.backup(plugin)
    second = fd.backup(plugin, level="F")
    for result in (first, second):
        assert result.status == "T" and not result.emulator_errors
        assert len(saved(result)) == len(SMALL)
        plugin_output = [t for t in result.texts() if t.startswith("python3-fd-mod:")]
        plugin_output += [info for name, info in result.calls if name == "bareosfd.DebugMessage"]
        for text in plugin_output:
            assert moto.secret not in text and moto.key not in text
    debug = [info for name, info in first.calls if name == "bareosfd.DebugMessage"]
    assert sum("prefetch /@libcloud/%s/" % bucket_name in line for line in debug) == len(SMALL)


def test_cancel_ends_every_helper(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, {"big": os.urandom(8 * MiB), "after": b"x"})
    result = fd.backup(
        plugin_string(moto, buckets_include=bucket_name, prefetch_size="64K", nb_prefetcher=2),
        cancel_after_reads=2,
    )
    assert result.status == "A"
    assert not result.emulator_errors  # no helper process, thread or temp file left over


def test_shards_cover_the_bucket_exactly_once(moto, fd, bucket_name):
    objects = {"obj/%03d" % i: b"%d" % i for i in range(60)}
    moto.make_bucket(bucket_name, objects)
    seen = []
    for k in (1, 2, 3):
        result = fd.backup(plugin_string(moto, buckets_include=bucket_name, shard="%d/3" % k, **opts()),
                           job_name="shard-%d" % k)
        assert result.status == "T", result.messages
        part = {naming.parse_fname(f)[1]: r.read_bytes() for f, r in saved(result).items()}
        assert part, "a shard of 60 objects should not be empty"
        seen.append(part)
    union = {}
    for part in seen:
        assert not set(part) & set(union)  # disjoint
        union.update(part)
    assert union == objects


@pytest.mark.parametrize("value", ["0/3", "4/3", "1/0", "half", "1-3"])
def test_bad_shard_is_refused(moto, fd, value):
    result = fd.backup(plugin_string(moto, shard=value))
    fatals = plugin_fatals(result)
    assert result.status == "f" and len(fatals) == 1 and "shard=" in fatals[0]


def test_progress_messages_every_n_objects(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, {"k%d" % i: b"x" for i in range(7)})
    result = fd.backup(plugin_string(moto, buckets_include=bucket_name, progress_interval=3, **opts()))
    progress = [t for t in result.texts(6) if "libcloud: progress:" in t]
    assert len(progress) == 2, result.messages  # after 3 and 6 of 7 objects


def test_objects_stored_compressed_are_saved_as_stored(s3, fd, bucket_name, tmp_path):
    """An object with Content-Encoding: gzip is saved byte for byte, never inflated on the way."""
    import gzip
    import zlib

    text = b"line of text that compresses well\n" * 20000
    stored = {"page.html.gz": gzip.compress(text), "data.z": zlib.compress(text), "plain": text[:1000]}
    s3.make_bucket(bucket_name)
    client = s3.boto3_client()
    client.put_object(Bucket=bucket_name, Key="page.html.gz", Body=stored["page.html.gz"],
                      ContentEncoding="gzip", ContentType="text/html")
    client.put_object(Bucket=bucket_name, Key="data.z", Body=stored["data.z"], ContentEncoding="deflate")
    client.put_object(Bucket=bucket_name, Key="plain", Body=stored["plain"])
    assert bucket_objects(s3, bucket_name) == stored
    result = fd.backup(plugin_string(s3, buckets_include=bucket_name, **opts(prefetch_size="1K")))
    assert result.status == "T", result.messages
    assert {f: r.read_bytes() for f, r in saved(result).items()} == {
        fname(bucket_name, k): v for k, v in stored.items()
    }
    where = str(tmp_path / "restore")
    assert fd.restore(where=where).status == "T"
    assert restored_keys(where, bucket_name) == stored


def test_an_estimate_does_not_call_its_objects_unchanged(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, {"one": b"1" * 1000})
    result = fd.estimate(plugin_string(moto, buckets_include=bucket_name, **opts()))
    summary = [t for t in result.texts(6) if " listed, " in t]
    assert summary and "estimate: 1 object listed, 1 declared to Bareos (1000 B), 0 skipped as unchanged" in summary[0]
