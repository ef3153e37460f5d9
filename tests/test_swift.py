"""OpenStack Swift, through Swift itself (tests/servers.py's ``Swift``): the plugin's
OPENSTACK_SWIFT provider against a real server.

libcloud's Swift driver takes the generic paths of listing.py and fetch.py (libcloud's own
listing iterator, whose pages follow a ``marker``), like AZURE_BLOBS, but with Swift's own
listing (JSON, a Last-Modified with microseconds and no time zone, the MD5 as ``hash``, 0 bytes
for a large object's manifest).  The server answers at most ``Swift.listing_limit`` objects a
page.  No auth middleware runs, so credentials cannot be refused here: the plugin reaches the
account through ``ex_force_auth_token`` and ``ex_force_base_url``.

Two tests hold what libcloud 3.9.1's Swift driver gets wrong on its GETs (object names with
``#``, ``?`` or ``%`` escapes; no streaming), which fetch.py works around by sending that GET
itself, quoted and streamed.
"""

import datetime
import os
import time
import urllib.parse

import pytest

from faultproxy import FaultProxy
from harness import MiB, REPO, restored_keys

from bareos_libcloud import naming

OBJECTS = {
    "plain.txt": b"hello swift",
    "dir/sub/70k": os.urandom(70000),
    "empty": b"",
    "with space+plus": b"s",
    "ünïcødé/ключ": b"u" * 1000,
    "big/streamed": os.urandom(3 * MiB + 17),  # over prefetch_size: handed to Bareos as a stream
}


def plugin(server, container, via=None, **options):
    """The plugin string for ``container``; ``via``: a FaultProxy in front of the Swift proxy."""
    options = dict(dict(nb_prefetcher=3, prefetch_size="1M", retry_max_wait=1), **options)
    text = "python3:module_path=%s:module_name=bareos-fd-libcloud:%s:buckets_include=%s" % (
        REPO, server.plugin_options(port=via.port if via else None), container)
    for key, value in options.items():
        text += ":%s=%s" % (key, value)
    return text


def saved(result):
    """``{key: bytes}`` of what a backup stored with data."""
    return {naming.parse_fname(r.fname)[1]: r.read_bytes() for r in result.files if r.cataloged and not r.deleted}


def listed_mtimes(server, container):
    """``{key: epoch seconds}`` of Swift's own JSON listing (``last_modified`` is UTC)."""
    return {item["name"]: int(datetime.datetime.fromisoformat(item["last_modified"])
                              .replace(tzinfo=datetime.timezone.utc).timestamp())
            for item in server.listing(container)}


def no_secret_in(server, *results):
    for result in results:
        for _, text in result.messages:
            for secret in (server.key, server.secret, server.token):
                assert secret not in text


@pytest.fixture
def proxy(swift):
    with FaultProxy(swift.host, swift.port) as p:
        yield p


def test_full_backup_then_restore_gives_the_container_back(swift, fd, bucket_name, tmp_path):
    swift.make_bucket(bucket_name, OBJECTS)
    result = fd.backup(plugin(swift, bucket_name))
    assert result.status == "T", result.messages
    assert saved(result) == OBJECTS
    for record in result.files:
        assert record.statp["st_size"] == len(OBJECTS[naming.parse_fname(record.fname)[1]])

    where = str(tmp_path / "restore")
    restore = fd.restore(where=where)
    assert restore.status == "T", restore.messages
    assert restored_keys(where, bucket_name) == swift.objects(bucket_name) == OBJECTS
    mtimes = listed_mtimes(swift, bucket_name)
    for key in OBJECTS:
        path = os.path.join(where, naming.object_fname(bucket_name, key).lstrip("/"))
        assert int(os.stat(path).st_mtime) == mtimes[key]
    no_secret_in(swift, result, restore)


def test_accurate_incremental_saves_changes_and_records_deletions(swift, fd, bucket_name, tmp_path):
    swift.make_bucket(bucket_name, {"keep": b"k", "change": b"old", "delete": b"d"})
    job = plugin(swift, bucket_name)
    assert fd.backup(job, accurate=True).status == "T"
    time.sleep(1.1)  # the job's "since" has whole seconds
    swift.put(bucket_name, "change", b"new bytes")
    swift.put(bucket_name, "new", b"n")
    swift.delete(bucket_name, "delete")

    inc = fd.backup(job, level="I", accurate=True)
    assert inc.status == "T", inc.messages
    assert saved(inc) == {"change": b"new bytes", "new": b"n"}
    assert inc.deleted == [naming.object_fname(bucket_name, "delete")]
    where = str(tmp_path / "restore")
    assert fd.restore(where=where).status == "T"
    assert restored_keys(where, bucket_name) == swift.objects(bucket_name) == {
        "keep": b"k", "change": b"new bytes", "new": b"n"}


def test_a_listing_of_several_pages_lists_every_object(swift, proxy, fd, bucket_name):
    count = 3 * swift.listing_limit + 2  # four pages; libcloud asks again after each, from its last key
    keys = ["k%04d" % i for i in range(count)]
    swift.make_bucket(bucket_name, {key: key.encode() for key in keys})
    result = fd.backup(plugin(swift, bucket_name, via=proxy))
    assert result.status == "T", result.messages
    assert saved(result) == {key: key.encode() for key in keys}
    assert len(result.files) == count
    pages = proxy.entries(method="GET", match="/v1/%s/%s?" % (swift.ACCOUNT, bucket_name))
    markers = [urllib.parse.parse_qs(e.target.partition("?")[2]).get("marker") for e in pages]
    ends = [keys[end - 1] for end in range(swift.listing_limit, count, swift.listing_limit)] + [keys[-1]]
    assert markers == [None] + [[key] for key in ends]  # the last request finds nothing more


def test_a_manifest_object_is_saved_with_the_bytes_of_its_segments(swift, fd, bucket_name, tmp_path):
    """A Swift large object (a DLO manifest: an empty object with ``X-Object-Manifest``) is
    listed with 0 bytes and the MD5 of nothing; its GET gives its segments joined.  Those bytes
    are saved and restored (restore.py keeps a copy longer than the listed size)."""
    segments = {"seg/00": os.urandom(700000), "seg/01": os.urandom(900000), "seg/02": b"tail"}
    whole = b"".join(segments.values())
    swift.make_bucket(bucket_name, segments)
    swift.put(bucket_name, "large", b"", headers={"X-Object-Manifest": "%s/seg/" % bucket_name})
    assert [item["bytes"] for item in swift.listing(bucket_name) if item["name"] == "large"] == [0]
    result = fd.backup(plugin(swift, bucket_name))
    assert result.status == "T", result.messages
    assert saved(result) == dict(segments, large=whole)

    where = str(tmp_path / "restore")
    restore = fd.restore(where=where)
    assert restore.status == "T", restore.messages
    assert restored_keys(where, bucket_name) == dict(segments, large=whole)


def test_keys_with_percent_hash_or_question_mark_are_saved(swift, fd, bucket_name, tmp_path):
    """libcloud's Swift driver put the key into the GET's path unquoted: Swift answered 404 and
    the object passed for deleted (a warning, job OK)."""
    objects = {"pct%20literal": b"p", "hash#tag": b"h", "what?now": b"q", "plain": b"x"}
    swift.make_bucket(bucket_name, objects)
    result = fd.backup(plugin(swift, bucket_name))
    assert saved(result) == objects, result.messages
    assert result.status == "T", result.messages
    where = str(tmp_path / "restore")
    assert fd.restore(where=where).status == "T"
    assert restored_keys(where, bucket_name) == objects


def test_a_transfer_broken_midway_still_gives_the_exact_bytes(swift, proxy, fd, bucket_name, tmp_path):
    big = os.urandom(4 * MiB + 5)
    swift.make_bucket(bucket_name, {"big": big, "small": b"s"})
    proxy.stall(1.0, after_bytes=2 * MiB + 11, then="reset", times=1, method="GET", match="/%s/big" % bucket_name)
    result = fd.backup(plugin(swift, bucket_name, via=proxy))
    assert result.status == "T", result.messages
    assert saved(result) == {"big": big, "small": b"s"}
    assert len(proxy.entries(method="GET", match="/%s/big" % bucket_name)) == 2

    where = str(tmp_path / "restore")
    assert fd.restore(where=where).status == "T"
    assert restored_keys(where, bucket_name) == {"big": big, "small": b"s"}


def test_a_broken_stream_resumes_from_the_byte_reached(swift, proxy, fd, bucket_name):
    big = os.urandom(4 * MiB + 5)
    swift.make_bucket(bucket_name, {"big": big})
    proxy.stall(1.0, after_bytes=2 * MiB + 11, then="reset", times=1, method="GET", match="/%s/big" % bucket_name)
    result = fd.backup(plugin(swift, bucket_name, via=proxy))
    assert result.status == "T" and saved(result) == {"big": big}, result.messages
    ranges = [e.header("range") for e in proxy.entries(method="GET", match="/%s/big" % bucket_name)]
    assert ranges[0] is None and ranges[1:] == ["bytes=%d-" % (2 * MiB)], ranges
