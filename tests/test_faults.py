"""Faults from the object store, injected by tests/faultproxy.py between the plugin and moto.

The promise: every listed object is either in the backup with exactly its bytes, or named in a
job message; the job log accounts for all of them.
"""

import os
import re
import signal
import sys
import threading
import time

import pytest

from harness import MiB, plugin_string

from bareos_libcloud import naming

M_ERROR, M_WARNING = 4, 5


def saved(result):
    return {naming.parse_fname(r.fname)[1]: r.read_bytes() for r in result.files if r.cataloged and not r.deleted}


def ours(result, kind=None):
    return [t for k, t in result.messages if t.startswith("python3-fd-mod: libcloud:") and (kind is None or k == kind)]


def accounting(result):
    """listed, saved, unchanged, vanished, failed from the summary message."""
    text = [t for t in ours(result) if " listed, " in t][-1]
    numbers = re.search(r"(\d+) objects? listed, (\d+) saved .*?, (\d+) unchanged, (\d+) vanished, (\d+) failed", text)
    return tuple(int(n) for n in numbers.groups())


def backup(fd, moto, proxy, bucket, **options):
    options.setdefault("nb_prefetcher", 2)
    options.setdefault("retry_max_wait", 1)
    return fd.backup(plugin_string(moto, via=proxy, buckets_include=bucket, **options))


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_errors_are_retried(moto, proxy, fd, bucket_name, status):
    objects = {"small": b"s" * 1000, "large": os.urandom(3 * MiB)}
    moto.make_bucket(bucket_name, objects)
    for key in objects:
        proxy.respond(status, times=2, method="GET", match="/%s/%s" % (bucket_name, key))
    result = backup(fd, moto, proxy, bucket_name, prefetch_size="1M", debug="yes")
    assert result.status == "T", result.messages
    assert saved(result) == objects
    statuses = [e.status for e in proxy.entries(method="GET", match="/%s/large" % bucket_name)]
    assert statuses == [status, status, 200]
    debug = [info for name, info in result.calls if name == "bareosfd.DebugMessage"]
    assert sum("retry" in line and "'large'" in line for line in debug) == 2


def test_listing_errors_are_retried_from_the_marker(moto, proxy, fd, bucket_name):
    objects = {"k%02d" % i: b"%d" % i for i in range(12)}
    moto.make_bucket(bucket_name, objects)
    listing = re.compile(r"^/%s/?\?" % re.escape(bucket_name))
    proxy.cut_listing(after_keys=5, times=1, match=listing)  # a short first page
    proxy.respond(503, times=1, method="GET", match=re.compile(r"marker=k04"))  # its next page fails once
    result = backup(fd, moto, proxy, bucket_name)
    assert result.status == "T", result.messages
    assert saved(result) == objects
    assert len(result.files) == len(objects)  # never an object twice
    markers = [e.query for e in proxy.entries(method="GET", match=listing)]
    assert sum("marker=k04" in q for q in markers) == 2
    assert accounting(result) == (12, 12, 0, 0, 0)


def test_a_broken_stream_resumes_where_it_stopped(moto, proxy, fd, bucket_name):
    data = os.urandom(6 * MiB + 3)
    moto.make_bucket(bucket_name, {"big": data, "small": b"x" * 300000})
    # Send 2 MiB + 11 bytes, let the client take them, then reset: it has 2 MiB in hand.
    proxy.stall(1.0, after_bytes=2 * MiB + 11, then="reset", times=1, method="GET", match="/%s/big" % bucket_name)
    proxy.reset_after(1000, times=1, method="GET", match="/%s/small" % bucket_name)
    result = backup(fd, moto, proxy, bucket_name, prefetch_size="1M")
    assert result.status == "T", result.messages
    assert saved(result) == {"big": data, "small": b"x" * 300000}
    resumes = [e for e in proxy.entries(method="GET", match="/%s/big" % bucket_name) if e.header("Range")]
    assert resumes, "the broken download was not resumed with a ranged GET"
    assert resumes[0].header("Range") == "bytes=%d-" % (2 * MiB)
    assert resumes[0].header("If-Match")


def test_a_vanished_object_is_a_warning_not_an_error(moto, proxy, fd, bucket_name):
    moto.make_bucket(bucket_name, {"gone": b"g", "kept": b"k"})
    proxy.respond(404, times=None, match="/%s/gone" % bucket_name)  # GET and HEAD: deleted
    result = backup(fd, moto, proxy, bucket_name)
    assert result.status == "T"
    assert saved(result) == {"kept": b"k"}
    warnings = ours(result, M_WARNING)
    assert any("'gone'" in w and "deleted before it could be read" in w for w in warnings)
    assert accounting(result) == (2, 1, 0, 1, 0)


def test_a_get_answered_404_for_an_object_a_head_finds_is_an_error(moto, proxy, fd, bucket_name):
    """A key the GET path cannot name (libcloud's Swift driver sent keys with '#', '?' or '%'
    unquoted) must not pass for a deleted object: only a warning, and out of the journal."""
    moto.make_bucket(bucket_name, {"odd": b"o", "kept": b"k"})
    proxy.respond(404, times=None, method="GET", match="/%s/odd" % bucket_name)
    result = backup(fd, moto, proxy, bucket_name)
    assert result.status == "W", result.messages
    assert saved(result) == {"kept": b"k"}
    errors = ours(result, M_ERROR)
    assert len(errors) == 1 and "'odd'" in errors[0] and "a HEAD finds it" in errors[0]
    assert accounting(result) == (2, 1, 0, 0, 1)
    assert [n for n in os.listdir(fd.workdir) if n.endswith(".journal")]


def test_an_object_changed_after_the_listing_is_saved_as_it_is_now(moto, proxy, fd, bucket_name):
    moto.make_bucket(bucket_name, {"k": b"short"})
    proxy.respond(503, times=1, method="GET", match="/%s/k" % bucket_name)
    client = moto.boto3_client()

    def overwrite_after_the_503():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not proxy.entries(method="GET", match="/%s/k" % bucket_name):
            time.sleep(0.005)
        client.put_object(Bucket=bucket_name, Key="k", Body=b"much longer than before")

    thread = threading.Thread(target=overwrite_after_the_503)
    thread.start()
    result = backup(fd, moto, proxy, bucket_name, retry_max_wait=2)
    thread.join()
    record = [r for r in result.files if r.cataloged][0]
    assert record.read_bytes() == b"much longer than before"
    assert record.statp["st_size"] == len(b"much longer than before")


def test_a_stalled_server_times_out_and_is_retried(moto, proxy, fd, bucket_name):
    moto.make_bucket(bucket_name, {"slow": b"x" * 5000})
    proxy.stall(30, after_bytes=None, times=1, method="GET", match="/%s/slow" % bucket_name)
    started = time.monotonic()
    result = backup(fd, moto, proxy, bucket_name, timeout=2)
    assert time.monotonic() - started < 20
    assert result.status == "T", result.messages
    assert saved(result) == {"slow": b"x" * 5000}


def test_an_object_that_keeps_failing_is_named_and_journaled(moto, proxy, fd, bucket_name):
    moto.make_bucket(bucket_name, {"bad": b"b", "good": b"g"})
    time.sleep(1.1)  # Last-Modified has one-second resolution
    rule = proxy.respond(500, times=None, method="GET", match="/%s/bad" % bucket_name)
    result = backup(fd, moto, proxy, bucket_name, retries=3)
    assert result.status == "W"
    assert saved(result) == {"good": b"g"}
    errors = ours(result, M_ERROR)
    assert len(errors) == 1 and "'bad'" in errors[0] and "HTTP 500" in errors[0]
    assert accounting(result) == (2, 1, 0, 0, 1)
    rule.cancel()
    again = fd.backup(plugin_string(moto, via=proxy, buckets_include=bucket_name, incremental_margin=0), level="I")
    assert saved(again) == {"bad": b"b"}  # the journal brings it back although it is old


def test_fail_on_error_fails_the_job(moto, proxy, fd, bucket_name):
    moto.make_bucket(bucket_name, {"bad": b"b", "good": b"g"})
    proxy.respond(500, times=None, method="GET", match="/%s/bad" % bucket_name)
    result = backup(fd, moto, proxy, bucket_name, retries=2, fail_on_error="yes")
    assert result.status == "f"
    assert any("fail_on_error" in t for t in ours(result, 3))


def test_a_stream_that_finally_breaks_is_saved_again_next_time(moto, proxy, fd, bucket_name):
    data = os.urandom(4 * MiB)
    moto.make_bucket(bucket_name, {"big": data})
    time.sleep(1.1)
    rule = proxy.reset_after(MiB, times=None, method="GET", match="/%s/big" % bucket_name)
    options = dict(prefetch_size="1M", retries=2)
    full = backup(fd, moto, proxy, bucket_name, **options)
    assert full.status == "W"
    assert any("'big'" in e for e in ours(full, M_ERROR))
    rule.cancel()
    inc = fd.backup(plugin_string(moto, via=proxy, buckets_include=bucket_name, **options), level="I",
                    accurate=True)
    assert inc.status == "T", inc.messages
    assert saved(inc) == {"big": data}
    assert fd.current_state()[naming.object_fname(bucket_name, "big")].read_bytes() == data


def test_a_truncated_copy_is_not_restored_as_the_object(moto, proxy, fd, bucket_name, tmp_path):
    """A stream that broke for good left Bareos part of the object, cataloged with its full
    size (real-fd-trace 7). Restoring that backup must not put the part in place as the object."""
    from harness import all_files_under, restored_keys

    data, fine = os.urandom(4 * MiB), os.urandom(3000)
    moto.make_bucket(bucket_name, {"big": data, "fine": fine})
    proxy.reset_after(MiB, times=None, method="GET", match="/%s/big" % bucket_name)
    full = backup(fd, moto, proxy, bucket_name, prefetch_size="1M", retries=2)
    assert full.status == "W"
    record = [r for r in full.files if naming.parse_fname(r.fname)[1] == "big"][0]
    assert len(record.read_bytes()) < len(data) == record.statp["st_size"]  # the trap itself

    where = str(tmp_path / "restore")
    restore = fd.restore(where=where)
    assert restored_keys(where, bucket_name) == {"fine": fine}
    assert [p for p in all_files_under(where) if ".part" in p] == []
    errors = ours(restore, M_ERROR)
    assert len(errors) == 1 and "'big'" in errors[0] and "was not restored" in errors[0], restore.messages
    assert "%d bytes" % len(record.read_bytes()) in errors[0] and str(len(data)) in errors[0]
    assert restore.status != "T"


def test_wrong_bytes_with_the_right_etag_are_caught(moto, proxy, fd, bucket_name):
    import hashlib

    good = b"the real content"
    moto.make_bucket(bucket_name, {"k": good})
    etag = '"%s"' % hashlib.md5(good).hexdigest()
    bogus = b"corrupted content"
    headers = {"ETag": etag, "Content-Type": "binary/octet-stream", "Last-Modified": "Mon, 23 Nov 2026 00:00:00 GMT"}
    rule = proxy.respond(200, body=bogus, headers=headers, times=1, method="GET", match="/%s/k" % bucket_name)
    result = backup(fd, moto, proxy, bucket_name)
    assert saved(result) == {"k": good}  # caught, read again
    assert rule.hits == 1
    proxy.respond(200, body=bogus, headers=headers, times=None, method="GET", match="/%s/k" % bucket_name)
    result = backup(fd, moto, proxy, bucket_name, retries=2)
    assert saved(result) == {}
    assert any("MD5" in e and "'k'" in e for e in ours(result, M_ERROR))


@pytest.mark.parametrize("path", ["direct", "prefetcher"])
def test_a_large_object_with_wrong_bytes_is_named_not_saved(moto, proxy, fd, bucket_name, tmp_path, monkeypatch,
                                                            path):
    """A streamed object whose bytes miss its MD5 ETag: it fails with an error naming it (and is
    journaled); the hashing thread ends with it.  Bareos catalogs a failed read anyway, so the
    last piece is held back until the MD5 is checked: the copy is short of its size, and a
    restore drops it instead of putting wrong bytes in place."""
    import hashlib

    from harness import restored_keys

    if path == "prefetcher":
        monkeypatch.setenv("no_proxy", "127.0.0.1")  # libcloud stays on requests: no direct streams
    good, fine = os.urandom(2 * MiB), os.urandom(3 * MiB)
    moto.make_bucket(bucket_name, {"big": good, "fine": fine})
    bogus = bytearray(good)
    bogus[MiB] ^= 0xFF
    headers = {"ETag": '"%s"' % hashlib.md5(good).hexdigest(), "Content-Type": "binary/octet-stream",
               "Last-Modified": "Mon, 23 Nov 2026 00:00:00 GMT"}
    proxy.respond(200, body=bytes(bogus), headers=headers, times=None, method="GET", match="/%s/big" % bucket_name)
    result = backup(fd, moto, proxy, bucket_name, prefetch_size="1M", retries=1, debug="yes")
    went_direct = not any("large objects go through the fetch helpers" in d for _, d in result.calls)
    assert went_direct == (path == "direct")
    assert result.status == "W", result.messages
    assert saved(result)["fine"] == fine
    assert accounting(result)[4] == 1  # one failed (Bareos catalogs a failed read anyway, see guarantees.md)
    assert any("MD5" in e and "'big'" in e for e in ours(result, M_ERROR)), result.messages
    assert not result.emulator_errors
    record = [r for r in result.files if naming.parse_fname(r.fname)[1] == "big"][0]
    assert len(record.read_bytes()) < len(good) == record.statp["st_size"]

    where = str(tmp_path / "restore")
    restore = fd.restore(where=where)
    assert restored_keys(where, bucket_name) == {"fine": fine}
    assert any("'big'" in e and "was not restored" in e for e in ours(restore, M_ERROR)), restore.messages


def _prefetchers():
    plugin = sys.modules.get("bareos-fd-libcloud")
    backup_session = getattr(getattr(plugin, "plugin", None), "backup", None)
    pool = getattr(backup_session, "pool", None)
    return list(pool.helpers) if pool is not None else []


def kill_the_prefetcher_streaming(key):
    """A started thread that SIGKILLs the fetch process streaming ``key`` once part of it has
    reached the job, and the list that then holds its pid."""
    killed = []

    def kill():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for helper in _prefetchers():
                downloads = list(getattr(helper, "downloads", {}).values())
                if any(download.key == key and download.received > 0 for download in downloads):
                    os.kill(helper.process.pid, signal.SIGKILL)
                    killed.append(helper.process.pid)
                    return
            time.sleep(0.01)

    thread = threading.Thread(target=kill)
    thread.start()
    return thread, killed


def test_a_killed_prefetcher_loses_nothing(moto, proxy, fd, bucket_name, monkeypatch):
    # A proxy variable keeps libcloud on requests: large objects then stream through prefetchers
    # (as for providers outside the S3 family) rather than straight into the job (direct.py).
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    data = os.urandom(5 * MiB)
    small = {"s%02d" % i: os.urandom(20000) for i in range(20)}
    moto.make_bucket(bucket_name, dict(small, big=data))
    proxy.stall(3, after_bytes=MiB, times=1, method="GET", match="/%s/big" % bucket_name)
    thread, killed = kill_the_prefetcher_streaming("big")
    result = backup(fd, moto, proxy, bucket_name, prefetch_size="1M", nb_prefetcher=3, debug="yes")
    thread.join()
    assert any("large objects go through the fetch helpers" in detail for _, detail in result.calls)
    assert killed, "the test did not find the prefetcher to kill"
    assert result.status == "T", result.messages
    assert saved(result) == dict(small, big=data)
    ranges = [e.header("Range") for e in proxy.entries(method="GET", match="/%s/big" % bucket_name)]
    assert ranges[0] is None and ranges[-1] and ranges[-1] != "bytes=0-"


class _Carried:
    """The keys the prefetch processes were given while the block ran (sampled every 5 ms)."""

    def __enter__(self):
        self.keys, self.done = set(), False
        self.thread = threading.Thread(target=self._watch)
        self.thread.start()
        return self.keys

    def _watch(self):
        while not self.done:
            for helper in _prefetchers():
                for download in list(getattr(helper, "downloads", {}).values()):
                    self.keys.add(download.key)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.done = True
        self.thread.join()


def test_large_objects_go_straight_to_the_job(moto, proxy, fd, bucket_name):
    """S3 family: a large object is read by the job thread itself (direct.py), no prefetcher
    carries its bytes; a break in the middle still resumes from the byte reached."""
    data = os.urandom(3 * MiB + 5)
    small = {"s%02d" % i: os.urandom(5000) for i in range(10)}
    moto.make_bucket(bucket_name, dict(small, big=data))
    proxy.stall(1.0, after_bytes=MiB + 3, then="reset", times=1, method="GET", match="/%s/big" % bucket_name)
    with _Carried() as carried:
        result = backup(fd, moto, proxy, bucket_name, prefetch_size="1M", nb_prefetcher=2)
    assert result.status == "T", result.messages
    assert saved(result) == dict(small, big=data)
    assert "big" not in carried and carried <= set(small)
    ranges = [e.header("Range") for e in proxy.entries(method="GET", match="/%s/big" % bucket_name)]
    assert ranges == [None, "bytes=%d-" % MiB], ranges


def test_helpers_are_named_for_ps(moto, proxy, fd, bucket_name):
    """ps and top show the helpers as libcloud-list and libcloud-fetch (PR_SET_NAME)."""
    moto.make_bucket(bucket_name, {"s%02d" % i: os.urandom(2000) for i in range(6)})
    proxy.stall(0.5, times=None, method="GET", match="/%s/s" % bucket_name)
    names, done = {}, threading.Event()  # pid -> its name when last seen (a fork renames itself at once)

    def watch():
        while not done.is_set():
            plugin = sys.modules.get("bareos-fd-libcloud")
            backup_session = getattr(getattr(plugin, "plugin", None), "backup", None)
            lister = getattr(backup_session, "lister", None)
            for helper in _prefetchers() + ([lister] if lister is not None else []):
                try:
                    with open("/proc/%d/comm" % helper.process.pid) as comm:
                        names[helper.process.pid] = comm.read().strip()
                except (OSError, ValueError, AttributeError):
                    pass
            time.sleep(0.01)

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        result = backup(fd, moto, proxy, bucket_name, nb_prefetcher=2)
    finally:
        done.set()
        thread.join()
    assert result.status == "T", result.messages
    assert set(names.values()) == {"libcloud-list", "libcloud-fetch"}, names


def test_accurate_reads_an_unseen_large_object_straight_into_the_job(moto, proxy, fd, bucket_name):
    """Accurate mode: Bareos asks for an object older than the since time that its catalog lacks.
    A large one is read by the job thread too, with the same resume."""
    data = os.urandom(3 * MiB + 7)
    moto.make_bucket(bucket_name, {"old": b"old"})
    plugin = plugin_string(moto, via=proxy, buckets_include=bucket_name, prefetch_size="1M", nb_prefetcher=2,
                           retry_max_wait=1)
    assert fd.backup(plugin, accurate=True).status == "T"
    moto.boto3_client().put_object(Bucket=bucket_name, Key="big", Body=data)
    proxy.stall(1.0, after_bytes=MiB + 3, then="reset", times=1, method="GET", match="/%s/big" % bucket_name)
    with _Carried() as carried:
        inc = fd.backup(plugin, level="I", accurate=True, since=int(time.time()) + 5)
    assert inc.status == "T", inc.messages
    assert saved(inc) == {"big": data}
    assert "big" not in carried
    ranges = [e.header("Range") for e in proxy.entries(method="GET", match="/%s/big" % bucket_name)]
    assert ranges == [None, "bytes=%d-" % MiB], ranges


def test_cancel_while_the_helpers_interpreter_hangs(moto, fd, bucket_name, tmp_path):
    """The fork server never forks (an interpreter that hangs): a cancel still ends the job at
    once, and nothing is left running."""
    moto.make_bucket(bucket_name, {"k": b"v"})
    hangs = tmp_path / "python3"
    hangs.write_text("#!/bin/sh\nexec sleep 600\n")
    hangs.chmod(0o755)
    started = time.monotonic()
    result = fd.backup(plugin_string(moto, buckets_include=bucket_name, python=str(hangs)), cancel_after_seconds=1)
    assert result.status == "A", result.messages
    assert time.monotonic() - started < 15
    assert not result.files


def test_cancel_while_the_server_stalls(moto, proxy, fd, bucket_name):
    moto.make_bucket(bucket_name, {"big": os.urandom(4 * MiB)})
    proxy.stall(60, after_bytes=600000, times=None, method="GET", match="/%s/big" % bucket_name)
    started = time.monotonic()
    result = fd.backup(plugin_string(moto, via=proxy, buckets_include=bucket_name, prefetch_size="64K",
                                     nb_prefetcher=1), cancel_after_reads=1)
    assert result.status == "A"
    assert time.monotonic() - started < 15
    assert not result.emulator_errors


def test_secrets_stay_out_of_error_messages(moto, proxy, fd, bucket_name):
    moto.make_bucket(bucket_name, {"k": b"v"})
    proxy.refuse(times=None)
    result = fd.backup(plugin_string(moto, via=proxy, buckets_include=bucket_name, retries=1,
                                     signature_version="2", debug="yes"))
    assert result.status == "f"
    text = " ".join(ours(result)) + " ".join(i for n, i in result.calls if n == "bareosfd.DebugMessage")
    assert moto.secret not in text and moto.key not in text


def _session():
    """The job's BackupSession while the emulated job runs (None before and after)."""
    plugin = sys.modules.get("bareos-fd-libcloud")
    return getattr(getattr(plugin, "plugin", None), "backup", None)


class _Watching:
    """Runs ``step(session)`` every 5 ms on a thread while the block runs (the session may be None)."""

    def __init__(self, step):
        self.step, self.done = step, threading.Event()

    def __enter__(self):
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        return self

    def _run(self):
        while not self.done.is_set():
            self.step(_session())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


def _kept(sessions):
    """A step that keeps every session seen, in ``sessions``."""
    def step(session):
        if session is not None and session not in sessions:
            sessions.append(session)
    return step


def test_a_dead_signer_is_replaced(moto, proxy, fd, bucket_name):
    """The signer dies while the first large object is read: the next ones are signed by a new
    one (before, every later large object of the job failed)."""
    objects = {"big%d" % i: os.urandom(2 * MiB + i) for i in range(3)}
    moto.make_bucket(bucket_name, objects)
    proxy.stall(1.0, after_bytes=MiB, times=1, method="GET", match="/%s/big0" % bucket_name)
    killed = []

    def kill(session):
        helper = getattr(getattr(session, "signer", None), "helper", None)
        if not killed and helper is not None and proxy.entries(method="GET", match="/%s/big0" % bucket_name):
            os.kill(helper.process.pid, signal.SIGKILL)
            killed.append(helper.process.pid)

    with _Watching(kill), _Carried() as carried:
        result = backup(fd, moto, proxy, bucket_name, prefetch_size="1M")
    assert killed, "the test did not find the signer to kill"
    assert result.status == "T", result.messages
    assert saved(result) == objects
    assert not carried  # all read by the job itself, the later ones signed by a new signer


def test_when_no_signer_lives_large_objects_go_through_the_prefetchers(moto, proxy, fd, bucket_name):
    """Once the first large object is read, every signing process dies as soon as it is seen:
    after a few new ones the large objects are read by the fetch helpers, and none is lost (also
    not the one whose signer just died)."""
    objects = {"big%d" % i: os.urandom(MiB + 300000 + i) for i in range(6)}
    objects.update({"s%d" % i: os.urandom(3000) for i in range(5)})
    moto.make_bucket(bucket_name, objects)
    proxy.stall(0.3, after_bytes=None, times=None, method="GET", match="/%s/big" % bucket_name)
    killed = []

    def kill(session):
        helper = getattr(getattr(session, "signer", None), "helper", None)
        first_read = proxy.entries(method="GET", match="/%s/big" % bucket_name)
        try:
            if helper is not None and helper.process.pid not in killed and first_read:
                os.kill(helper.process.pid, signal.SIGKILL)
                killed.append(helper.process.pid)
        except (OSError, ValueError, AttributeError):  # it ended meanwhile
            pass

    with _Watching(kill):
        result = backup(fd, moto, proxy, bucket_name, prefetch_size="1M", debug="yes")
    assert killed
    assert result.status == "T", result.messages
    assert saved(result) == objects
    assert any("large objects go through the fetch helpers" in detail for _, detail in result.calls)


def test_resumed_streams_give_their_memory_back(moto, proxy, fd, bucket_name, monkeypatch):
    """A stream continued in another prefetcher keeps no second reservation: when every download
    is released nothing is reserved (before, 1 MiB stayed per resume, and after ~256 resumes
    prefetching fell to one object at a time)."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # large objects stream through the fetch helpers
    data = os.urandom(6 * MiB)
    small = {"s%02d" % i: os.urandom(20000) for i in range(10)}
    moto.make_bucket(bucket_name, dict(small, big=data))
    proxy.stall(1.0, after_bytes=MiB, times=4, method="GET", match="/%s/big" % bucket_name)
    kills, pools, pids = [], [], []

    def kill(session):
        pool = getattr(session, "pool", None)
        if pool is None:
            return
        if pool not in pools:
            pools.append(pool)
        for helper in list(pool.helpers):
            download = next((d for d in getattr(helper, "downloads", {}).values() if d.key == "big"), None)
            reached = kills[-1] if kills else 0
            if len(kills) < 3 and download is not None and download.received > reached:
                try:
                    if helper.process.pid in pids:
                        continue
                    os.kill(helper.process.pid, signal.SIGKILL)
                except (OSError, ValueError, AttributeError):  # it ended meanwhile
                    continue
                pids.append(helper.process.pid)
                kills.append(download.received)

    with _Watching(kill):
        result = backup(fd, moto, proxy, bucket_name, prefetch_size="1M", nb_prefetcher=3)
    assert len(kills) == 3, kills
    assert result.status == "T", result.messages
    assert saved(result) == dict(small, big=data)
    assert [pool.reserved for pool in pools] == [0]


@pytest.mark.parametrize("path", ["small", "direct", "prefetcher"])
def test_an_object_read_on_demand_must_be_the_listed_version(moto, proxy, fd, bucket_name, monkeypatch, path):
    """Accurate mode: Bareos reads an object it has the listed attributes of (older than the
    since time, but not in its catalog).  Overwritten between the listing and that read, it is
    not saved under the old size (a restore would refuse it): the GET asks for the listed ETag,
    the object is named, and the next backup saves the new version."""
    import hashlib

    if path == "prefetcher":
        monkeypatch.setenv("no_proxy", "127.0.0.1")  # large objects stream through the fetch helpers
    old = os.urandom(3000 if path == "small" else 3 * MiB + 7)
    new = os.urandom(len(old) // 2)
    moto.make_bucket(bucket_name, {"keep": b"k"})
    plugin = plugin_string(moto, via=proxy, buckets_include=bucket_name, prefetch_size="1M", nb_prefetcher=2,
                           retry_max_wait=1)
    assert fd.backup(plugin, accurate=True).status == "T"
    client = moto.boto3_client()
    client.put_object(Bucket=bucket_name, Key="obj", Body=old)
    overwritten = []

    def overwrite_when_read(method, target):  # a rule that never acts: it overwrites, once
        if method == "GET" and target.startswith("/%s/obj" % bucket_name) and not overwritten:
            client.put_object(Bucket=bucket_name, Key="obj", Body=new)
            overwritten.append(target)
        return False

    proxy.respond(500, times=None, match=overwrite_when_read)
    inc = fd.backup(plugin, level="I", accurate=True, since=int(time.time()) + 5)
    assert overwritten
    assert inc.status == "W", inc.messages
    errors = ours(inc, M_ERROR)
    assert len(errors) == 1 and "'obj'" in errors[0], errors
    assert "changed after its attributes were sent" in errors[0], errors
    gets = proxy.entries(method="GET", match="/%s/obj" % bucket_name)
    assert gets[0].header("If-Match") == '"%s"' % hashlib.md5(old).hexdigest()
    assert saved(inc).get("obj", b"") == b""  # Bareos catalogs a failed open with no bytes: a restore refuses it

    again = fd.backup(plugin, level="I", accurate=True, since=int(time.time()) + 5)
    assert again.status == "T", again.messages
    assert saved(again) == {"obj": new}  # the journal brought it back
    assert fd.current_state()[naming.object_fname(bucket_name, "obj")].read_bytes() == new


@pytest.mark.parametrize("path", ["small", "direct", "prefetcher"])
@pytest.mark.parametrize("kind", ["archived", "sse-c"])
def test_an_object_no_plain_get_can_read_is_named_with_its_reason(moto, proxy, fd, bucket_name, monkeypatch,
                                                                  path, kind):
    """An object in an archive storage class (moto answers 403 InvalidObjectState, as S3 does)
    or stored with a customer key (SSE-C: moto does not model it, so the proxy answers what S3
    answers, 400 InvalidRequest) is named with the reason, not as "access denied"."""
    if path == "prefetcher":
        monkeypatch.setenv("no_proxy", "127.0.0.1")
    data = os.urandom(3000 if path == "small" else 2 * MiB)
    moto.make_bucket(bucket_name, {"fine": b"f"})
    client = moto.boto3_client()
    if kind == "archived":
        # Listed as readable, its GET refused as archived (moved to an archive class after the
        # listing); objects the listing shows archived never reach a GET (tests/test_archived.py).
        client.put_object(Bucket=bucket_name, Key="obj", Body=data)
        proxy.respond(403, times=None, method="GET", match="/%s/obj" % bucket_name,
                      body="<Error><Code>InvalidObjectState</Code><Message>The operation is not valid for the "
                           "object's storage class</Message><StorageClass>DEEP_ARCHIVE</StorageClass></Error>")
        reason = "archived in storage class DEEP_ARCHIVE, not readable without a restore request"
    else:
        client.put_object(Bucket=bucket_name, Key="obj", Body=data)
        proxy.respond(400, times=None, method="GET", match="/%s/obj" % bucket_name, code="InvalidRequest",
                      message="The object was stored using a form of Server Side Encryption. The correct "
                              "parameters must be provided to retrieve the object.")
        reason = "encrypted with a customer key (SSE-C)"
    result = backup(fd, moto, proxy, bucket_name, prefetch_size="1M")
    assert result.status == "W", result.messages
    assert saved(result) == {"fine": b"f"}
    errors = ours(result, M_ERROR)
    assert len(errors) == 1 and "'obj'" in errors[0] and reason in errors[0], errors
    assert "access denied" not in errors[0]
    assert len(proxy.entries(method="GET", match="/%s/obj" % bucket_name)) == 1  # never retried


@pytest.mark.parametrize("body", ["whole", "shorter", "longer"])
def test_a_large_object_whose_get_states_no_size(moto, proxy, fd, bucket_name, tmp_path, body):
    """A GET without Content-Length (chunked): Bareos is told the listed size, never -1 (2^64-1:
    accurate jobs would save it again forever, and the restore's size check would be off); bytes
    that do not add up to it fail the object, with its copy short of that size.  "shorter": the
    object was overwritten with a shorter one after the listing; "longer": more bytes come."""
    from harness import restored_keys

    data, fine = os.urandom(3 * MiB + 5), os.urandom(2000)
    moto.make_bucket(bucket_name, {"big": data, "fine": fine})
    client, overwritten = moto.boto3_client(), []

    def get_big(method, target):
        if not target.startswith("/%s/big" % bucket_name):
            return False
        if body == "shorter" and not overwritten:
            client.put_object(Bucket=bucket_name, Key="big", Body=data[: 2 * MiB])
            overwritten.append(target)
        return True

    proxy.rechunk(times=None, method="GET", match=get_big, extra=b"surplus" if body == "longer" else b"")
    result = backup(fd, moto, proxy, bucket_name, prefetch_size="1M")
    record = [r for r in result.files if naming.parse_fname(r.fname)[1] == "big"][0]
    assert record.statp["st_size"] == len(data)
    if body == "whole":
        assert result.status == "T", result.messages
        assert saved(result) == {"big": data, "fine": fine}
        return
    assert result.status == "W", result.messages
    errors = ours(result, M_ERROR)
    assert len(errors) == 1 and "'big'" in errors[0], errors
    if body == "longer":
        assert "more than the %d bytes listed" % len(data) in errors[0]
    else:
        assert "fewer bytes than its size" in errors[0]
    assert len(record.read_bytes()) < len(data)
    where = str(tmp_path / "restore")
    fd.restore(where=where)
    assert restored_keys(where, bucket_name) == {"fine": fine}


@pytest.mark.parametrize("path", ["direct", "prefetcher"])
def test_retries_and_resumes_are_counted(moto, proxy, fd, bucket_name, monkeypatch, path):
    """Without debug=yes too, the job counts every retried request and every resumed transfer,
    the fetch helpers' (their messages) and its own direct streams'."""
    if path == "prefetcher":
        monkeypatch.setenv("no_proxy", "127.0.0.1")
    objects = {"small": os.urandom(1000), "large": os.urandom(3 * MiB)}
    moto.make_bucket(bucket_name, objects)
    proxy.respond(503, times=2, method="GET", match="/%s/small" % bucket_name)
    proxy.stall(1.0, after_bytes=MiB + 3, then="reset", times=1, method="GET", match="/%s/large" % bucket_name)
    sessions = []
    with _Watching(_kept(sessions)):
        result = backup(fd, moto, proxy, bucket_name, prefetch_size="1M")
    assert result.status == "T", result.messages
    assert saved(result) == objects
    faults = sessions[-1].faults
    assert (faults.retried, faults.resumed) == (2, 1)
    assert any("; 2 requests retried, 1 transfer resumed" in t for t in ours(result)), result.messages
    assert not ours(result, M_WARNING)  # a few are no reason for a warning


def test_a_store_that_fails_often_gets_a_warning(moto, proxy, fd, bucket_name):
    """The listing's retries count too (the lister's messages), and many retries are a warning."""
    objects = {"o%02d" % i: os.urandom(500) for i in range(12)}
    moto.make_bucket(bucket_name, objects)
    proxy.respond(503, times=2, method="GET", match=re.compile(r"^/%s/?\?" % re.escape(bucket_name)))
    proxy.respond(503, times=10, method="GET", match="/%s/o" % bucket_name)
    result = backup(fd, moto, proxy, bucket_name, retries=20, retry_max_wait=0)
    assert result.status == "T", result.messages
    assert saved(result) == objects
    assert any("; 12 requests retried, 0 transfers resumed" in t for t in ours(result)), result.messages
    warnings = ours(result, M_WARNING)
    assert len(warnings) == 1 and "failed 12 requests" in warnings[0] and "throttling" in warnings[0]


def test_a_stream_continued_in_another_prefetcher_is_counted_as_resumed(moto, proxy, fd, bucket_name,
                                                                         monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    data = os.urandom(4 * MiB)
    moto.make_bucket(bucket_name, {"big": data})
    proxy.stall(2, after_bytes=MiB, times=1, method="GET", match="/%s/big" % bucket_name)
    thread, killed = kill_the_prefetcher_streaming("big")
    sessions = []
    with _Watching(_kept(sessions)):
        result = backup(fd, moto, proxy, bucket_name, prefetch_size="1M")
    thread.join()
    assert killed
    assert result.status == "T", result.messages
    assert saved(result) == {"big": data}
    faults = sessions[-1].faults
    assert (faults.retried, faults.resumed) == (0, 1)


def test_the_lister_reports_its_retries(moto, proxy, bucket_name):
    """The lister sends ("retried", text) for each retried request, whatever debug says (the job
    counts them, backup.py)."""
    from bareos_libcloud.job.helpers import Helper, python_executable, stop_servers
    from bareos_libcloud.helper.worker import lister_main

    moto.make_bucket(bucket_name, {"k%d" % i: b"v" for i in range(3)})
    proxy.respond(503, times=2, method="GET", match=re.compile(r"^/%s/?\?" % re.escape(bucket_name)))
    config = {"provider": moto.provider, "timeout": 30, "retries": 5, "retry_max_wait": 0.5, "debug": False,
              "secrets": [moto.secret], "buckets_include": [bucket_name], "ca_file": None,
              "driver_kwargs": dict(key=moto.key, secret=moto.secret, host=proxy.host, port=proxy.port,
                                    secure=False, region=moto.region)}
    lister = Helper("bareos-libcloud-lister", lister_main, config, python_executable(), threading.Event())
    try:
        messages = []
        while not messages or messages[-1][0] not in ("done", "fatal"):
            assert lister.ready(30)
            messages.append(lister.conn.recv())
    finally:
        lister.stop()
        stop_servers()
    kinds = [m[0] for m in messages]
    assert kinds.count("retried") == 2 and "debug" not in kinds, messages
    assert all("503" in m[1] for m in messages if m[0] == "retried")
    assert kinds[-1] == "done"
