"""The helper protocols' ids (protocol.py): an answer is only ever taken for the request it names.

A helper that answers late or for another request is ended and never asked again; the job goes
on with a new one.  Driven here against moto with helpers that misbehave on purpose
(tests/fakehelpers.py), through the real Signer, DirectDownload and PrefetchPool.
"""

import os
import threading

import pytest

import fakehelpers
from harness import MiB


@pytest.fixture
def config(moto, tmp_path):
    return {
        "provider": moto.provider,
        "driver_kwargs": dict(key=moto.key, secret=moto.secret, host=moto.host, port=moto.port, secure=False,
                              region=moto.region),
        "ca_file": None,
        "timeout": 30,
        "retries": 3,
        "retry_max_wait": 0.5,
        "debug": False,
        "secrets": [moto.secret],
        "once": str(tmp_path / "misbehaved"),
        "late": 3,
    }


@pytest.fixture
def modules():
    """The plugin's modules as loaded now (the emulator's jobs purge and re-import them), and
    nothing of this test's left running afterwards."""
    from bareos_libcloud import retry
    from bareos_libcloud.job import direct, helpers, prefetch

    yield direct, prefetch, retry
    helpers.stop_servers()


def _read_directly(direct, retry, signer, bucket, key):
    """The bytes a DirectDownload reads, or its error."""
    download = direct.DirectDownload(bucket, key, signer, retry.RetryPolicy(3, 0.5), 30, threading.Event())
    download.open()
    data = bytearray()
    while True:
        chunk = download.next_chunk()
        if chunk is None:
            download.close()
            return download.error
        if not chunk:
            return bytes(data)
        data += chunk


def _signer_pid(signer):
    return signer.helper.process.pid if signer.helper is not None else None


@pytest.mark.parametrize("fault", ["late", "wrong id"])
def test_a_signature_is_only_taken_for_its_own_request(moto, bucket_name, config, modules, monkeypatch, fault):
    """A late signer answers the request for "a" after the job gave up waiting: that answer must
    not be taken for "b" (b's name with a's bytes, and every check would pass).  Another answers
    a's request with another id.  Either way it is ended, and a new signer signs both."""
    from bareos_libcloud.job.helpers import python_executable

    direct, _, retry = modules
    a, b = os.urandom(MiB + 1), os.urandom(MiB + 2)
    moto.make_bucket(bucket_name, {"a": a, "b": b})
    misbehaving = fakehelpers.late_signer_main if fault == "late" else fakehelpers.wrong_id_signer_main
    monkeypatch.setattr(direct, "signer_main", misbehaving)
    signer = direct.Signer(config, python_executable(), threading.Event())
    try:
        assert signer.usable()
        first = _signer_pid(signer)
        monkeypatch.setattr(direct, "SIGNER_SECONDS", 2)  # the signer started: now answers are awaited 2 s
        got_a = _read_directly(direct, retry, signer, bucket_name, "a")
        got_b = _read_directly(direct, retry, signer, bucket_name, "b")
        assert got_b == b
        assert got_a == a
        assert _signer_pid(signer) != first and signer.starts == 2
    finally:
        signer.stop()


def test_a_prefetcher_answering_for_another_download_is_ended(moto, bucket_name, config, modules):
    """Every answer of a prefetcher names the download's seq; one that names another is never
    taken, and its helper is not asked again: the download goes to another one."""
    from bareos_libcloud.job.helpers import python_executable

    _, prefetch, retry = modules
    a = os.urandom(300000)
    moto.make_bucket(bucket_name, {"a": a})
    faults = retry.FaultCounts()
    pool = prefetch.PrefetchPool(config, python_executable(), workers=1, queue_size=4, memory_budget=64 * MiB,
                                 inline_limit=MiB, stall_seconds=600, cancelled=threading.Event(), faults=faults,
                                 target=fakehelpers.wrong_seq_fetcher_main)
    try:
        download = prefetch.Download(pool, 1, bucket_name, "a", {"size": len(a), "mtime": None, "etag": None, "md5": None})
        pool.add(download)
        pool.pump(0.0)
        first = pool.helpers[0]
        pool.wait_settled(download)
        assert download.state == prefetch.COMPLETE and bytes(download.data) == a
        assert first not in pool.helpers and not first.process.is_alive()
        assert faults.retried == 1
        pool.release(download)
        assert pool.reserved == 0
    finally:
        pool.close()


def test_an_answer_under_another_running_downloads_seq_is_caught_by_its_key(moto, bucket_name, config, modules):
    """One fetch helper runs two downloads; it answers the first one it finishes under the other's
    seq. The seq alone would pass (that helper does run it): the key named in the answer does not,
    so the helper is ended and both objects come whole, each with its own bytes."""
    from bareos_libcloud.job.helpers import python_executable

    _, prefetch, retry = modules
    a, b = os.urandom(200000), os.urandom(100000)
    moto.make_bucket(bucket_name, {"a": a, "b": b})
    faults = retry.FaultCounts()
    pool = prefetch.PrefetchPool(config, python_executable(), workers=2, queue_size=4, memory_budget=64 * MiB,
                                 inline_limit=MiB, stall_seconds=600, cancelled=threading.Event(), faults=faults,
                                 target=fakehelpers.swapped_seq_fetcher_main)
    try:
        downloads = [prefetch.Download(pool, seq, bucket_name, key, {"size": len(data), "mtime": None, "etag": None,
                                                                     "md5": None})
                     for seq, key, data in ((1, "a", a), (2, "b", b))]
        for download in downloads:
            pool.add(download)
        pool.pump(0.0)
        first = pool.helpers[0]
        for download in downloads:
            pool.wait_settled(download)
        assert [bytes(d.data) for d in downloads] == [a, b]
        assert all(d.state == prefetch.COMPLETE for d in downloads)
        assert first not in pool.helpers and not first.process.is_alive()
        assert faults.retried >= 1
        for download in downloads:
            pool.release(download)
        assert pool.reserved == 0
    finally:
        pool.close()
