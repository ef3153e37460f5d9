"""The retry journal across job levels, end to end (moto behind the fault proxy).

"Restore latest" is the last Full, the newest Differential after it and the Incrementals after
that: an object that failed must stay in the journal until a job in every such chain saved it.
"""

import os
import time

import pytest

from harness import MiB, plugin_string, restored_keys

from bareos_libcloud import naming


def saved(result):
    return {naming.parse_fname(r.fname)[1]: r.read_bytes() for r in result.files if r.cataloged and not r.deleted}


def journals(fd):
    return [n for n in os.listdir(fd.workdir) if n.endswith(".journal")]


@pytest.mark.parametrize("accurate", [False, True])
def test_an_object_that_failed_in_a_full_is_in_every_restore_until_the_next_full(
        moto, proxy, fd, bucket_name, tmp_path, accurate):
    """The Full holds a short copy (its stream broke after part of it went to Bareos, which
    catalogs it with its full size); an Incremental saves it whole; the Differential after that
    is based on the Full and must save it too, or "restore latest" finds only the short copy."""
    data = os.urandom(3 * MiB)
    moto.make_bucket(bucket_name, {"big": data, "good": b"g"})
    time.sleep(1.1)
    plugin = plugin_string(moto, via=proxy, buckets_include=bucket_name, nb_prefetcher=2, retries=2,
                           retry_max_wait=1, prefetch_size="1M", incremental_margin=0)
    rule = proxy.reset_after(MiB // 2, times=None, method="GET", match="/%s/big" % bucket_name)
    full = fd.backup(plugin, accurate=accurate)
    assert full.status == "W" and saved(full)["good"] == b"g" and len(saved(full)["big"]) < len(data)
    rule.cancel()

    incremental = fd.backup(plugin, level="I", accurate=accurate)
    assert saved(incremental) == {"big": data}
    differential = fd.backup(plugin, level="D", accurate=accurate)
    assert differential.status == "T", differential.messages
    assert saved(differential) == {"big": data}
    where = str(tmp_path / "restore")
    assert fd.restore(where=where).status == "T"
    assert restored_keys(where, bucket_name) == {"big": data, "good": b"g"}

    assert fd.backup(plugin, level="F", accurate=accurate).status == "T"
    assert not journals(fd)
    assert saved(fd.backup(plugin, level="I", accurate=accurate)) == {}


def test_an_object_recovered_by_an_incremental_is_not_saved_again(moto, proxy, fd, bucket_name):
    moto.make_bucket(bucket_name, {"bad": b"old", "good": b"g"})
    time.sleep(1.1)
    plugin = plugin_string(moto, via=proxy, buckets_include=bucket_name, nb_prefetcher=2, retries=2,
                           retry_max_wait=1, incremental_margin=0)
    assert fd.backup(plugin, accurate=True).status == "T"
    time.sleep(1.1)
    moto.boto3_client().put_object(Bucket=bucket_name, Key="bad", Body=b"new bytes")
    rule = proxy.respond(500, times=None, method="GET", match="/%s/bad" % bucket_name)
    failed = fd.backup(plugin, level="I", accurate=True)
    assert failed.status == "W" and saved(failed) == {}
    rule.cancel()
    recovered = fd.backup(plugin, level="I", accurate=True)
    assert saved(recovered) == {"bad": b"new bytes"}
    assert not journals(fd)
    # Declared with the attributes it has, not a made-up ctime: Bareos finds it unchanged now.
    assert saved(fd.backup(plugin, level="I", accurate=True)) == {}


def test_an_entry_for_an_object_that_no_longer_exists_is_dropped(moto, proxy, fd, bucket_name):
    moto.make_bucket(bucket_name, {"bad": b"b", "good": b"g"})
    plugin = plugin_string(moto, via=proxy, buckets_include=bucket_name, nb_prefetcher=2, retries=2,
                           retry_max_wait=1, incremental_margin=0)
    rule = proxy.respond(500, times=None, method="GET", match="/%s/bad" % bucket_name)
    assert fd.backup(plugin).status == "W"
    rule.cancel()
    assert journals(fd)
    moto.boto3_client().delete_object(Bucket=bucket_name, Key="bad")
    assert fd.backup(plugin, level="I").status == "T"
    assert not journals(fd)


def test_an_object_deleted_before_bareos_reads_it_on_demand_is_vanished_not_failed(moto, proxy, fd, bucket_name):
    """Accurate mode: an old object new to the catalog (the selection grew) is declared from the
    listing and read only when Bareos opens it; gone by then, it counts as vanished: a warning,
    not an error of the plugin's, nothing journaled."""
    moto.make_bucket(bucket_name, {"x/1": b"1", "y/old": b"o"})
    time.sleep(1.1)
    narrow = plugin_string(moto, via=proxy, buckets_include=bucket_name, nb_prefetcher=2, prefix="x/")
    assert fd.backup(narrow, accurate=True).status == "T"
    proxy.respond(404, times=None, match="/%s/y/old" % bucket_name)  # GET and HEAD: deleted
    wide = plugin_string(moto, via=proxy, buckets_include=bucket_name, nb_prefetcher=2)
    inc = fd.backup(wide, level="I", accurate=True)
    # Bareos was told about it already: its own "Cannot open" (M_NOTSAVED) makes the job "OK --
    # with warnings"; the plugin adds no error of its own.
    assert inc.status == "W", inc.messages
    assert not [t for t in inc.texts(4) if "libcloud:" in t]
    assert any("'y/old'" in t and "deleted before it could be read" in t for t in inc.texts(5))
    assert any("1 vanished, 0 failed" in t for t in inc.texts(6)), inc.messages
    assert not journals(fd)


def test_a_journaled_object_deleted_after_its_listing_leaves_the_journal(moto, proxy, fd, bucket_name):
    moto.make_bucket(bucket_name, {"bad": b"b", "good": b"g"})
    plugin = plugin_string(moto, via=proxy, buckets_include=bucket_name, nb_prefetcher=2, retries=2,
                           retry_max_wait=1)
    rule = proxy.respond(500, times=None, method="GET", match="/%s/bad" % bucket_name)
    assert fd.backup(plugin).status == "W"
    rule.cancel()
    proxy.respond(404, times=None, match="/%s/bad" % bucket_name)  # listed, then gone (GET and HEAD)
    inc = fd.backup(plugin, level="I")
    assert inc.status == "T", inc.messages
    assert any("'bad'" in t and "deleted before it could be read" in t for t in inc.texts(5))
    assert not journals(fd)
