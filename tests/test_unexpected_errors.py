"""An unexpected exception inside a callback must leave Bareos the safe answer (the plugin's
bug must not become a silently short file or a recorded deletion).  The real plugin with a
fault injected (tests/fdemu/testplugins/bareos-fd-libcloud-raising.py), against moto."""

import os

from harness import REPO, plugin_string

PLUGINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fdemu", "testplugins")
M_FATAL, M_ERROR = 3, 4


def raising(server, bucket):
    text = plugin_string(server, buckets_include=bucket, nb_prefetcher=2)
    return text.replace("module_path=%s:" % REPO, "module_path=%s:" % PLUGINS, 1).replace(
        "module_name=bareos-fd-libcloud:", "module_name=bareos-fd-libcloud-raising:")


def test_an_exception_in_io_read_is_a_read_error_not_an_end_of_file(moto, fd, bucket_name, monkeypatch):
    moto.make_bucket(bucket_name, {"k": b"x" * 1000})
    monkeypatch.setenv("LIBCLOUD_RAISE_IN", "read")
    result = fd.backup(raising(moto, bucket_name))
    assert any("Read error" in t for t in result.texts(M_ERROR)), result.messages
    assert any("internal error in plugin_io" in t for t in result.texts(M_FATAL))


def test_an_exception_in_check_file_keeps_the_old_copy(moto, fd, bucket_name, monkeypatch):
    moto.make_bucket(bucket_name, {"gone": b"g", "kept": b"k"})
    plugin = plugin_string(moto, buckets_include=bucket_name, nb_prefetcher=2)
    assert fd.backup(plugin, accurate=True).status == "T"
    moto.boto3_client().delete_object(Bucket=bucket_name, Key="gone")
    monkeypatch.setenv("LIBCLOUD_RAISE_IN", "check_file")
    result = fd.backup(raising(moto, bucket_name), level="I", accurate=True)
    assert any("internal error in check_file" in t for t in result.texts(M_FATAL)), result.messages
    assert result.deleted == []
