"""Restores that go wrong on the local side, through the emulated bareos-fd, from moto backups."""

import contextlib
import os
import resource
import signal

import pytest

from harness import MiB, all_files_under, plugin_string, restored_keys

M_ERROR = 4


@contextlib.contextmanager
def file_size_limit(nbytes):
    """Writes past ``nbytes`` of any file fail with EFBIG in this process (RLIMIT_FSIZE, with
    SIGXFSZ ignored so the process is not killed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_a_write_that_fails_is_one_error_and_leaves_nothing_behind(moto, fd, bucket_name, tmp_path):
    """IO_WRITE fails (EFBIG); the plugin names the object once, the core adds its own "Write
    error", and IO_CLOSE after it adds nothing (it used to report fstat(-1): "Bad file
    descriptor"). No .part file and nothing under the object's name stays."""
    big, small = os.urandom(3 * MiB), b"small enough"
    moto.make_bucket(bucket_name, {"big": big, "small": small})
    backup = fd.backup(plugin_string(moto, buckets_include=bucket_name, nb_prefetcher=2, prefetch_size="1M"))
    assert backup.status == "T", backup.messages

    where = str(tmp_path / "restore")
    with file_size_limit(MiB):
        restore = fd.restore(where=where)
    assert restore.status == "W", restore.messages
    errors = restore.texts(M_ERROR)
    plugin_errors = [t for t in errors if t.startswith("python3-fd-mod:")]
    core_errors = [t for t in errors if not t.startswith("python3-fd-mod:")]
    assert len(plugin_errors) == 1, errors
    assert "big" in plugin_errors[0] and "File too large" in plugin_errors[0], errors
    assert len(core_errors) == 1 and core_errors[0].startswith("Write error on ") and "/big" in core_errors[0]
    assert restored_keys(where, bucket_name) == {"small": small}
    assert [p for p in all_files_under(where) if "big" in os.path.basename(p) or ".part" in p] == []


BLOCK = 262144 - 8  # Bareos's read size with sparse=yes


def sparse_flags():
    flags = bytearray.fromhex("02c0000800")
    flags[0] |= 1 << 5  # FO_SPARSE
    return bytes(flags)


@pytest.mark.parametrize("prefetch_size", ["8M", "64K"], ids=["prefetched", "streamed"])
@pytest.mark.parametrize("workers", [0, 2], ids=["serial", "parallel"])
def test_a_sparse_object_that_ends_in_a_zero_block_restores_whole(moto, fd, bucket_name, tmp_path, monkeypatch,
                                                                  workers, prefetch_size):
    """Its size is an exact multiple of the read size. Bareos's SendDataToSd (the serial path)
    always sends the last block; its parallel pipeline (Maximum Workers Per Job > 0, the
    default) would skip it, so the plugin never answers a full read that ends the object."""
    import fdemu.backup
    monkeypatch.setattr(fdemu.backup, "MAX_WORKERS_PER_JOB", workers, raising=False)
    data = os.urandom(BLOCK) + bytes(BLOCK) + os.urandom(BLOCK) + bytes(BLOCK)
    moto.make_bucket(bucket_name, {"disk.img": data})
    backup = fd.backup(plugin_string(moto, buckets_include=bucket_name, prefetch_size=prefetch_size),
                       fileset_options=sparse_flags())
    assert backup.status == "T", backup.messages
    assert sum(backup.files[0].record_sizes()) < len(data)  # a zero block was skipped (records hold 8 more bytes)
    where = str(tmp_path / "restore")
    restore = fd.restore(where=where)
    assert restore.status == "T", restore.messages
    assert restored_keys(where, bucket_name) == {"disk.img": data}
