"""Bareos Verify jobs on this plugin's backups, in the emulated daemon (fdemu.FileDaemon.verify,
modelled on filed/dir_cmd.cc, filed/verify.cc, filed/verify_vol.cc and dird/verify.cc; the
findings are in docs/verify.md)."""

from fdemu import FileDaemon

from bareos_libcloud import naming
from harness import REPO


def fileset(server, cred, bucket):
    return ("python3:module_path=%s:module_name=bareos-fd-libcloud:provider=%s:host=%s:port=%d:secure=false"
            ":region=%s:credentials_file=%s:buckets_include=%s:nb_prefetcher=2"
            % (REPO, server.provider, server.host, server.port, server.region, cred, bucket))


def backed_up(moto, tmp_path, bucket_name):
    moto.make_bucket(bucket_name, {"a/%d" % i: b"x" * i for i in range(6)})
    cred = tmp_path / "s3.cred"
    cred.write_text("key=%s\nsecret=%s\n" % (moto.key, moto.secret))
    cred.chmod(0o600)
    plugin = fileset(moto, cred, bucket_name)
    fd = FileDaemon(str(tmp_path / "fd"))
    backup = fd.backup(plugin)
    assert backup.status == "T", backup.messages
    return fd, plugin, backup


def test_volume_to_catalog_reads_the_backup_without_the_object_store(moto, tmp_path, bucket_name):
    """VolumeToCatalog compares what the volume holds with the catalog: the plugin is loaded and
    parses its options (the FileSet is sent), and does nothing else: no listing, no helper."""
    fd, plugin, backup = backed_up(moto, tmp_path, bucket_name)
    verify = fd.verify(plugin, level="O")  # strict: a helper process left over would fail it
    assert verify.status == "T", verify.messages
    assert verify.messages == []
    assert verify.summary["files_examined"] == len(backup.files) == 6
    called = {name for name, _ in verify.calls if not name.startswith(("core:", "bareosfd."))}
    assert called == {"load_bareos_plugin", "parse_plugin_definition", "handle_plugin_event"}
    assert {naming.parse_fname(r.fname)[1] for r in backup.files} == {"a/%d" % i for i in range(6)}


def test_disk_to_catalog_and_data_cannot_verify_a_plugin_fileset(moto, tmp_path, bucket_name):
    fd, plugin, _ = backed_up(moto, tmp_path, bucket_name)
    for level in ("d", "C", "V"):  # DiskToCatalog, Catalog, InitCatalog: FindFiles has no plugin callback
        verify = fd.verify(plugin, level=level)
        assert verify.status == "f"
        assert [text for kind, text in verify.messages] == ['Plugin: "%s" not found.\n' % plugin]
        # the message quotes the plugin string whole: with credentials_file it holds no key
        assert moto.secret not in verify.messages[0][1] and moto.key not in verify.messages[0][1]
    data = fd.verify(plugin, level="A")
    assert data.status == "f" and [t for k, t in data.messages] == ["Unimplemented verify level 65\n"]
