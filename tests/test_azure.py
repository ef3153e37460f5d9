"""Azure Blob Storage, through Azurite: the plugin on a provider outside the S3 family.

libcloud's AZURE_BLOBS driver takes the generic paths of listing.py and fetch.py (libcloud's own
iterator and download_object_as_stream, requests as transport, no size from the GET), so these
tests are the real-server check of everything the S3 tests do not reach.
"""

import email.utils
import os
import time

import pytest

from fdemu import FileDaemon
from harness import REPO, MiB, restored_keys

from bareos_libcloud import naming

OBJECTS = {
    "plain.txt": b"hello azure",
    "dir/sub/70k": os.urandom(70000),
    "empty": b"",
    "with space+plus": b"s",
    "ünïcødé/ключ": b"u" * 1000,
    "pct%20literal": b"p",
    "big/streamed": os.urandom(3 * MiB + 17),  # over prefetch_size: a stream, not held whole
}


@pytest.fixture
def fd(tmp_path):
    return FileDaemon(str(tmp_path / "fd"))


def plugin(server, container, port=None, **options):
    """The plugin string for ``container``; ``port``: a FaultProxy's in front of Azurite."""
    text = "python3:module_path=%s:module_name=bareos-fd-libcloud:%s:buckets_include=%s" % (
        REPO, server.plugin_options(), container)
    if port is not None:
        text = text.replace(":port=%d:" % server.port, ":port=%d:" % port)
    options.setdefault("nb_prefetcher", 3)
    options.setdefault("prefetch_size", "1M")
    options.setdefault("retry_max_wait", 1)
    for key, value in options.items():
        text += ":%s=%s" % (key, value)
    return text


def saved(result):
    """``{key: bytes}`` of what a backup stored with data."""
    return {naming.parse_fname(r.fname)[1]: r.read_bytes() for r in result.files if r.cataloged and not r.deleted}


def listed_mtimes(server, container):
    drv = server.libcloud_driver()
    return {o.name: int(email.utils.parsedate_to_datetime(o.extra["last_modified"]).timestamp())
            for o in drv.list_container_objects(drv.get_container(container))}


def test_full_backup_then_restore_gives_the_container_back(azurite, fd, bucket_name, tmp_path):
    azurite.make_bucket(bucket_name, OBJECTS)
    result = fd.backup(plugin(azurite, bucket_name))
    assert result.status == "T", result.messages
    assert saved(result) == OBJECTS
    for record in result.files:
        assert record.statp["st_size"] == len(OBJECTS[naming.parse_fname(record.fname)[1]])

    where = str(tmp_path / "restore")
    restore = fd.restore(where=where)
    assert restore.status == "T", restore.messages
    assert restored_keys(where, bucket_name) == azurite.objects(bucket_name) == OBJECTS
    mtimes = listed_mtimes(azurite, bucket_name)
    for key in OBJECTS:
        path = os.path.join(where, naming.object_fname(bucket_name, key).lstrip("/"))
        assert int(os.stat(path).st_mtime) == mtimes[key]


def test_accurate_incremental_saves_changes_and_records_deletions(azurite, fd, bucket_name, tmp_path):
    azurite.make_bucket(bucket_name, {"keep": b"k", "change": b"old", "delete": b"d"})
    job = plugin(azurite, bucket_name)
    assert fd.backup(job, accurate=True).status == "T"
    time.sleep(1.1)  # Last-Modified has whole seconds
    drv = azurite.libcloud_driver()
    container = drv.get_container(bucket_name)
    drv.upload_object_via_stream(iter([b"new bytes"]), container, "change")
    drv.upload_object_via_stream(iter([b"n"]), container, "new")
    drv.delete_object(drv.get_object(bucket_name, "delete"))

    inc = fd.backup(job, level="I", accurate=True)
    assert inc.status == "T", inc.messages
    assert saved(inc) == {"change": b"new bytes", "new": b"n"}
    assert inc.deleted == [naming.object_fname(bucket_name, "delete")]
    where = str(tmp_path / "restore")
    assert fd.restore(where=where).status == "T"
    assert restored_keys(where, bucket_name) == azurite.objects(bucket_name)


def test_a_listing_of_several_pages_lists_every_blob(azurite, fd, bucket_name):
    keys = ["k%04d" % i for i in range(230)]  # libcloud asks Azure for 100 blobs a page
    azurite.make_bucket(bucket_name, {key: key.encode() for key in keys})
    result = fd.estimate(plugin(azurite, bucket_name))
    assert result.summary["files"] == len(keys)
    assert sorted(line.rpartition("/")[2] for line in result.listing) == keys


def test_bad_credentials_fail_the_job_with_one_clear_message(azurite, fd, bucket_name):
    azurite.make_bucket(bucket_name, {"k": b"v"})
    wrong = plugin(azurite, bucket_name, debug="yes").replace(azurite.secret, "A" * 86 + "==")
    result = fd.backup(wrong)
    assert result.status == "f"
    fatals = [t for k, t in result.messages if k == 3 and t.startswith("python3-fd-mod: libcloud:")]
    assert len(fatals) == 1 and "refused the credentials" in fatals[0], result.messages
    text = " ".join(t for _, t in result.messages) + " ".join(str(c) for c in result.calls)
    assert azurite.secret not in text
