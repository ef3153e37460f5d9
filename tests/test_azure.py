"""Azure Blob Storage, through Azurite: the plugin on a provider outside the S3 family.

libcloud's AZURE_BLOBS driver takes the generic paths of listing.py and fetch.py (libcloud's own
iterator and download_object_as_stream, requests as transport, no size from the GET), so these
tests are the real-server check of everything the S3 tests do not reach.
"""

import email.utils
import os
import threading
import time

import pytest

from faultproxy import FaultProxy
from fdemu import FileDaemon
from harness import MiB, all_files_under, plugin_string, restored_keys

from bareos_libcloud import naming

M_ERROR = 4
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


def plugin(server, container, via=None, **options):
    """The plugin string for ``container``; ``via``: a FaultProxy in front of Azurite."""
    options = dict(dict(nb_prefetcher=3, prefetch_size="1M", retry_max_wait=1), **options)
    return plugin_string(server, via=via, buckets_include=container, **options)


def saved(result):
    """``{key: bytes}`` of what a backup stored with data."""
    return {naming.parse_fname(r.fname)[1]: r.read_bytes() for r in result.files if r.cataloged and not r.deleted}


def ours(result, kind=None):
    return [t for k, t in result.messages if t.startswith("python3-fd-mod: libcloud:") and (kind is None or k == kind)]


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


@pytest.fixture
def proxy(azurite):
    with FaultProxy(azurite.host, azurite.port) as p:
        yield p


def test_broken_transfers_resume_from_the_byte_reached(azurite, proxy, fd, bucket_name):
    big, small = os.urandom(4 * MiB + 5), os.urandom(300000)
    azurite.make_bucket(bucket_name, {"big": big, "small": small})
    proxy.stall(1.0, after_bytes=2 * MiB + 11, then="reset", times=1, method="GET", match="/%s/big" % bucket_name)
    proxy.reset_after(1000, times=1, method="GET", match="/%s/small" % bucket_name)
    result = fd.backup(plugin(azurite, bucket_name, via=proxy))
    assert result.status == "T", result.messages
    assert saved(result) == {"big": big, "small": small}
    gets = proxy.entries(method="GET", match="/%s/big" % bucket_name)
    assert [e.header("x-ms-range") for e in gets][1:] == ["bytes=%d-" % (2 * MiB)]
    # a range GET on Azure is not conditional: the blob's ETag is asked for after it
    assert proxy.entries(method="HEAD", match="/%s/big" % bucket_name)


def test_a_blob_rewritten_before_the_resume_is_named_not_saved_mixed(azurite, proxy, fd, bucket_name, tmp_path):
    old, new = os.urandom(4 * MiB), os.urandom(4 * MiB)
    azurite.make_bucket(bucket_name, {"big": old, "fine": b"f"})
    time.sleep(1.1)  # so that the incremental below has nothing else to save
    proxy.stall(2.0, after_bytes=2 * MiB + 11, then="reset", times=1, method="GET", match="/%s/big" % bucket_name)

    def rewrite_during_the_stall():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not proxy.entries(method="GET", match="/%s/big" % bucket_name):
            time.sleep(0.01)
        drv = azurite.libcloud_driver()
        drv.upload_object_via_stream(iter([new]), drv.get_container(bucket_name), "big")

    thread = threading.Thread(target=rewrite_during_the_stall)
    thread.start()
    result = fd.backup(plugin(azurite, bucket_name, via=proxy))
    thread.join()
    errors = ours(result, M_ERROR)
    assert len(errors) == 1 and "'big'" in errors[0] and "changed while it was read" in errors[0], result.messages
    assert result.status == "W"
    stored = saved(result)
    assert stored["fine"] == b"f" and stored.get("big") not in (old, new)

    where = str(tmp_path / "restore")
    fd.restore(where=where)
    assert restored_keys(where, bucket_name) == {"fine": b"f"}  # the mixed copy is refused
    assert [p for p in all_files_under(where) if ".part" in p] == []

    again = fd.backup(plugin(azurite, bucket_name, incremental_margin=0), level="I")
    assert saved(again) == {"big": new}  # and saved by the next job


def test_where_the_driver_cannot_resume_a_broken_transfer_is_read_again(azurite, proxy, bucket_name, monkeypatch):
    """A provider whose libcloud driver has no ranged reads: a transfer that broke before any of
    it went to the job is read again from the start (worker._send_object, in this process)."""
    import socket
    from multiprocessing.connection import Pipe

    # imported here: the emulator's jobs purge and re-import the package's modules
    from bareos_libcloud.helper import driver, fetch, fetcher
    from bareos_libcloud.retry import RetryPolicy

    data = os.urandom(300000)
    azurite.make_bucket(bucket_name, {"k": data})
    etag = azurite.libcloud_driver().get_object(bucket_name, "k").hash
    proxy.reset_after(1000, times=1, method="GET", match="/%s/k" % bucket_name)
    monkeypatch.setattr(fetch, "reads_ranges", lambda drv: False)
    before = socket.getdefaulttimeout()
    drv = driver.make_driver(azurite.provider, dict(key=azurite.key, secret=azurite.secret, host=azurite.host,
                                                    port=proxy.port, secure=False), 30)
    socket.setdefaulttimeout(before)  # make_driver sets it for the helper process it runs in
    ours, theirs = Pipe(duplex=True)
    request = ("get", 1, bucket_name, "k", {"size": len(data), "mtime": None, "etag": etag}, MiB, 0, None)
    channel = fetcher.Channel(fetcher.Outbox(theirs), fetcher.Credits(), 1)
    sender = threading.Thread(target=fetcher.send_object, args=(channel, drv, RetryPolicy(1, 0.1), request))
    sender.start()  # the pipe holds less than the object: read while it sends
    message = ours.recv()
    received = bytearray()
    while message[0] == "object" and len(received) < message[-1]:
        received += os.read(ours.fileno(), message[-1] - len(received))
    sender.join()
    assert message[0] == "object" and bytes(received) == data
    assert [e.header("x-ms-range") for e in proxy.entries(method="GET", match="/%s/k" % bucket_name)] == [None, None]


def test_a_failed_listing_page_is_asked_again_not_the_bucket_lost(azurite, proxy, fd, bucket_name):
    """libcloud's generic listing iterator cannot resume after a failed page: each request of it
    is retried instead, so a 503 or a reset on page two neither loses nor repeats an object."""
    keys = ["k%04d" % i for i in range(230)]  # three pages of 100
    azurite.make_bucket(bucket_name, {key: key.encode() for key in keys})
    second_page = lambda method, target: "comp=list" in target and "marker=" in target  # noqa: E731
    busy = proxy.respond(503, times=2, method="GET", match=second_page)
    reset = proxy.reset_after(200, times=1, method="GET", match=second_page)
    result = fd.backup(plugin(azurite, bucket_name, via=proxy))
    assert result.status == "T", result.messages
    assert busy.hits == 2 and reset.hits == 1
    assert saved(result) == {key: key.encode() for key in keys}
    assert len(result.files) == len(keys)


def test_wrong_bytes_are_caught_by_the_md5_the_listing_states(azurite, proxy, fd, bucket_name, tmp_path):
    """Azure states each block blob's content MD5 in the listing: bytes that miss it are read
    again (small), or the stream fails naming the object and its copy is refused at restore."""
    small, big, fine = b"the real content", os.urandom(2 * MiB), os.urandom(3000)
    azurite.make_bucket(bucket_name, {"small": small, "big": big, "fine": fine})
    flipped = bytearray(big)
    flipped[MiB] ^= 0xFF
    headers = {"Content-Type": "application/octet-stream", "Last-Modified": "Mon, 23 Nov 2026 00:00:00 GMT"}
    once = proxy.respond(200, body=b"corrupted content", headers=headers, times=1, method="GET",
                         match="/%s/small" % bucket_name)
    proxy.respond(200, body=bytes(flipped), headers=headers, times=None, method="GET", match="/%s/big" % bucket_name)
    result = fd.backup(plugin(azurite, bucket_name, via=proxy, retries=1))
    assert once.hits == 1
    stored = saved(result)
    assert stored["small"] == small and stored["fine"] == fine  # read again after the bad copy
    errors = ours(result, M_ERROR)
    assert len(errors) == 1 and "'big'" in errors[0] and "MD5" in errors[0], result.messages
    assert len(stored["big"]) < len(big)  # the last piece was withheld: Bareos's copy is short

    where = str(tmp_path / "restore")
    fd.restore(where=where)
    assert restored_keys(where, bucket_name) == {"small": small, "fine": fine}


def test_a_killed_prefetcher_stream_continues_in_another(azurite, proxy, fd, bucket_name):
    """A stream another prefetch process began continues at the byte reached, with a range GET,
    and is confirmed unchanged at its end."""
    from test_faults import kill_the_prefetcher_streaming

    data = os.urandom(5 * MiB)
    azurite.make_bucket(bucket_name, {"big": data, "small": b"s"})
    proxy.stall(3, after_bytes=MiB, times=1, method="GET", match="/%s/big" % bucket_name)
    thread, killed = kill_the_prefetcher_streaming("big")
    result = fd.backup(plugin(azurite, bucket_name, via=proxy))
    thread.join()
    assert killed, "the test did not find the prefetcher to kill"
    assert result.status == "T", result.messages
    assert saved(result) == {"big": data, "small": b"s"}
    ranges = [e.header("x-ms-range") for e in proxy.entries(method="GET", match="/%s/big" % bucket_name)]
    assert ranges[0] is None and ranges[-1] and ranges[-1] != "bytes=0-"
    assert proxy.entries(method="HEAD", match="/%s/big" % bucket_name)
