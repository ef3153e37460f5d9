"""Objects' metadata kept at backup (get_xattr), written to disk and restored into buckets.

End to end through the emulated bareos-fd against moto and radosgw (the ``s3`` fixture runs
each test on both); the bucket's contents are read back with boto3, not the plugin.
"""

import errno
import gzip
import os
import time

import pytest

from harness import MiB, bucket_objects, plugin_string, restored_keys

M_ERROR, M_WARNING = 4, 5

HEADERS = {
    "ContentType": "image/webp",
    "CacheControl": "max-age=3600, public",
    "ContentDisposition": 'attachment; filename="cat.webp"',
    "ContentEncoding": "identity",
    "ContentLanguage": "de-CH",
    "Metadata": {"owner": "web-team", "empty": "", "colour": "=?UTF-8?B?Z3LDvG4=?="},
}
TAGS = "project=photos&tier=hot%20data"


def put(server, bucket, key, data, tags=None, **headers):
    args = dict(Bucket=bucket, Key=key, Body=data, **headers)
    if tags:
        args["Tagging"] = tags
    server.boto3_client().put_object(**args)


def head(server, bucket, key):
    answer = server.boto3_client().head_object(Bucket=bucket, Key=key)
    return {name: answer.get(name) for name in ("ContentType", "CacheControl", "ContentDisposition",
                                                 "ContentEncoding", "ContentLanguage", "Metadata")}


def tags_of(server, bucket, key):
    answer = server.boto3_client().get_object_tagging(Bucket=bucket, Key=key)
    return sorted((t["Key"], t["Value"]) for t in answer["TagSet"])


def restore_into_bucket(fd, where, replace="always", **options):
    text = "python3:restore_to=bucket" + "".join(":%s=%s" % item for item in options.items())
    return fd.restore(where=where, replace=replace, plugin_options=text)


@pytest.fixture
def photos(s3, bucket_name):
    """A bucket with a described object, a tagged one, a plain one and a large (streamed) one."""
    s3.make_bucket(bucket_name)
    put(s3, bucket_name, "cats/cat.webp", b"meow" * 1000, tags=TAGS, **HEADERS)
    put(s3, bucket_name, "plain.txt", b"plain")
    put(s3, bucket_name, "big.bin", os.urandom(3 * MiB + 5), ContentType="application/x-big",
        Metadata={"size": "large"}, Tagging="kind=big")
    return bucket_name


def test_metadata_and_tags_are_written_to_restored_files(s3, photos, fd, tmp_path):
    backup = fd.backup(plugin_string(s3, buckets_include=photos, prefetch_size="1M"))
    assert backup.status == "T", backup.messages
    where = str(tmp_path / "disk")
    restore = fd.restore(where=where)
    assert restore.status == "T", restore.messages
    files = restored_keys(where, photos)
    assert files == bucket_objects(s3, photos)
    path = os.path.join(where, "@libcloud", photos, "cats", "cat.webp")
    attrs = {name: os.getxattr(path, name) for name in os.listxattr(path)}
    assert attrs["user.libcloud.content-type"] == b"image/webp"
    assert attrs["user.libcloud.cache-control"] == b"max-age=3600, public"
    assert attrs["user.libcloud.content-disposition"] == b'attachment; filename="cat.webp"'
    assert attrs["user.libcloud.meta.owner"] == b"web-team"
    assert attrs["user.libcloud.meta.empty"] == b""
    assert attrs["user.libcloud.meta.colour"] == b"=?UTF-8?B?Z3LDvG4=?="  # as AWS keeps non-ASCII
    assert attrs["user.libcloud.tags"] in (b"project=photos&tier=hot%20data", b"tier=hot%20data&project=photos")
    big = os.path.join(where, "@libcloud", photos, "big.bin")  # streamed: metadata from the direct GET
    assert os.getxattr(big, "user.libcloud.content-type") == b"application/x-big"
    assert os.getxattr(big, "user.libcloud.meta.size") == b"large"
    assert os.getxattr(big, "user.libcloud.tags") == b"kind=big"


def test_restore_into_a_new_bucket_gives_keys_bytes_metadata_and_tags_back(s3, photos, fd, tmp_path, bucket_name):
    backup = fd.backup(plugin_string(s3, buckets_include=photos, prefetch_size="1M"))
    assert backup.status == "T", backup.messages
    target = bucket_name + "-new"
    restore = restore_into_bucket(fd, str(tmp_path / "spool"), restore_bucket=target, restore_prefix="back/")
    assert restore.status == "T", restore.messages
    original = bucket_objects(s3, photos)
    assert bucket_objects(s3, target) == {"back/" + key: data for key, data in original.items()}
    assert head(s3, target, "back/cats/cat.webp") == head(s3, photos, "cats/cat.webp")
    assert tags_of(s3, target, "back/cats/cat.webp") == tags_of(s3, photos, "cats/cat.webp")
    assert head(s3, target, "back/big.bin") == head(s3, photos, "big.bin")
    assert tags_of(s3, target, "back/big.bin") == [("kind", "big")]
    assert os.listdir(tmp_path / "spool") == []  # the spool is gone
    assert any("3 objects uploaded (3.0 MiB) into buckets" in text for text in restore.texts()), restore.texts()


def test_replace_decides_what_happens_to_a_key_that_exists(s3, photos, fd, tmp_path):
    backup = fd.backup(plugin_string(s3, buckets_include=photos, prefetch_size="1M"))
    assert backup.status == "T", backup.messages
    original = bucket_objects(s3, photos)
    time.sleep(1.1)  # Last-Modified counts whole seconds: the change must be newer than the backup's copy
    put(s3, photos, "plain.txt", b"changed after the backup")
    s3.boto3_client().delete_object(Bucket=photos, Key="cats/cat.webp")
    put(s3, photos, "new-since.txt", b"not in the backup")

    never = restore_into_bucket(fd, str(tmp_path / "s1"), replace="never")
    assert never.status == "T", never.messages
    now = bucket_objects(s3, photos)
    assert now["plain.txt"] == b"changed after the backup"  # kept
    assert now["cats/cat.webp"] == original["cats/cat.webp"]  # deleted: restored
    assert now["new-since.txt"] == b"not in the backup"  # never deleted

    ifnewer = restore_into_bucket(fd, str(tmp_path / "s2"), replace="ifnewer")
    assert ifnewer.status == "T", ifnewer.messages
    assert bucket_objects(s3, photos)["plain.txt"] == b"changed after the backup"  # the bucket's is newer

    ifolder = restore_into_bucket(fd, str(tmp_path / "s3"), replace="ifolder")
    assert ifolder.status == "T", ifolder.messages
    assert bucket_objects(s3, photos) == dict(original, **{"new-since.txt": b"not in the backup"})

    put(s3, photos, "plain.txt", b"changed again")
    always = restore_into_bucket(fd, str(tmp_path / "s4"), replace="always")
    assert always.status == "T", always.messages
    assert bucket_objects(s3, photos) == dict(original, **{"new-since.txt": b"not in the backup"})


def test_upload_faults_are_retried_and_one_that_stays_is_named_and_the_job_is_not_ok(moto, proxy, fd, tmp_path,
                                                                                     bucket_name):
    """Through the fault proxy, which the restore reaches by its own port= (connection options
    given at restore override the backup's): two 503s are retried; a 403 that stays fails that
    object only, named in an M_ERROR."""
    objects = {"a.txt": b"a" * 100, "b.txt": b"b" * 200, "c.txt": b"c" * 300}
    moto.make_bucket(bucket_name, objects)
    backup = fd.backup(plugin_string(moto, buckets_include=bucket_name))
    assert backup.status == "T", backup.messages
    target = bucket_name + "-back"
    moto.make_bucket(target)
    proxy.respond(503, times=2, method="PUT", match="/%s/a.txt" % target)
    proxy.respond(403, times=None, method="PUT", match="/%s/b.txt" % target)
    restore = restore_into_bucket(fd, str(tmp_path / "spool"), restore_bucket=target, port=proxy.port,
                                  retry_max_wait=0)
    assert restore.status == "W", restore.messages
    errors = restore.texts(M_ERROR)
    assert len(errors) == 1 and "'b.txt'" in errors[0] and "access denied" in errors[0], errors
    assert bucket_objects(moto, target) == {"a.txt": objects["a.txt"], "c.txt": objects["c.txt"]}
    assert any("2 requests retried" in text for text in restore.texts()), restore.texts()
    assert len([e for e in proxy.entries(method="PUT", match="a.txt")]) == 3


def test_a_restore_option_to_disk_that_names_a_store_is_refused(s3, photos, fd, tmp_path):
    backup = fd.backup(plugin_string(s3, buckets_include=photos))
    assert backup.status == "T", backup.messages
    restore = fd.restore(where=str(tmp_path / "d"), plugin_options="python3:restore_bucket=x")
    assert restore.status != "T"
    assert any("restore_bucket" in text for text in restore.texts()), restore.texts()


def test_a_large_object_goes_back_whole_with_its_metadata(s3, fd, tmp_path, bucket_name):
    """70 MiB: a multipart upload in 5 MiB parts (the ETag of the parts is checked), signed with
    SigV2 (the S3_RGW default, whose sub-resources libcloud alone does not sign: radosgw checks)
    and with SigV4, given at restore."""
    data = os.urandom(70 * MiB + 123)
    s3.make_bucket(bucket_name)
    put(s3, bucket_name, "video/big.mp4", data, ContentType="video/mp4", Metadata={"camera": "x100"})
    backup = fd.backup(plugin_string(s3, buckets_include=bucket_name))
    assert backup.status == "T", backup.messages
    for signature in ("2", "4"):
        target = "%s-v%s" % (bucket_name[:50], signature)
        restore = restore_into_bucket(fd, str(tmp_path / "spool"), restore_bucket=target,
                                      signature_version=signature)
        assert restore.status == "T", restore.messages
        assert bucket_objects(s3, target) == {"video/big.mp4": data}
        assert head(s3, target, "video/big.mp4") == head(s3, bucket_name, "video/big.mp4")


def test_a_cancelled_restore_aborts_its_multipart_upload(moto, proxy, fd, tmp_path, bucket_name):
    """The cancel comes while a part's answer is held back: the upload stops at its next part,
    the multipart upload is aborted (no parts left to pay for) and the object is not there."""
    moto.make_bucket(bucket_name, {"big.bin": os.urandom(70 * MiB)})
    backup = fd.backup(plugin_string(moto, buckets_include=bucket_name))
    assert backup.status == "T", backup.messages
    target = bucket_name + "-cancel"
    moto.make_bucket(target)
    proxy.stall(6.0, after_bytes=None, then="continue", method="PUT", match="partNumber=3")
    restore = fd.restore(where=str(tmp_path / "spool"), cancel_after_seconds=3.0,
                         plugin_options="python3:restore_to=bucket:restore_bucket=%s:port=%d:signature_version=4"
                         % (target, proxy.port))
    assert restore.status == "A", restore.messages
    client = moto.boto3_client()
    assert client.list_multipart_uploads(Bucket=target).get("Uploads", []) == []
    assert bucket_objects(moto, target) == {}
    assert [e for e in proxy.entries(method="DELETE") if "uploadId=" in e.target], proxy.log
    assert os.listdir(tmp_path / "spool") == []


def test_a_partial_restore_uploads_only_the_selected_objects(s3, photos, fd, tmp_path, bucket_name):
    backup = fd.backup(plugin_string(s3, buckets_include=photos, prefetch_size="1M"))
    assert backup.status == "T", backup.messages
    target = bucket_name + "-part"
    selected = [name for name in fd.current_state() if name.endswith("/cats/cat.webp")]
    assert len(selected) == 1
    restore = fd.restore(where=str(tmp_path / "spool"), files=selected,
                         plugin_options="python3:restore_to=bucket:restore_bucket=" + target)
    assert restore.status == "T", restore.messages
    assert bucket_objects(s3, target) == {"cats/cat.webp": bucket_objects(s3, photos)["cats/cat.webp"]}


# -- Azure Blobs (Azurite): another provider family, and restores across providers ---------------
AZURE_HEADERS = {"Content-Type": "text/csv", "Cache-Control": "no-cache", "Content-Encoding": "gzip",
                 "Content-Language": "fr", "Content-Disposition": "inline"}


def azure_put(azurite, container, key, data, content_type=None, meta=None, headers=None):
    drv = azurite.libcloud_driver()
    extra = {"meta_data": meta or {}}
    if content_type:
        extra["content_type"] = content_type
    azure_headers = {"x-ms-blob-" + name.lower(): value for name, value in (headers or {}).items()}
    drv.upload_object_via_stream(iter([data]), drv.get_container(container), key, extra=extra,
                                 headers=azure_headers)


def azure_head(azurite, container, key):
    """The blob's standard headers and user metadata, read with a plain HEAD through libcloud."""
    drv = azurite.libcloud_driver()
    answer = drv.connection.request("/%s/%s" % (container, key), method="HEAD")
    headers = {name.lower(): value for name, value in answer.headers.items()}
    described = {name: headers.get(name.lower()) for name in AZURE_HEADERS}
    described["meta"] = {name[len("x-ms-meta-"):]: value for name, value in headers.items()
                         if name.startswith("x-ms-meta-")}
    return described


def azure_restore_options(azurite, **options):
    text = "python3:restore_to=bucket:" + azurite.plugin_options()
    return text + "".join(":%s=%s" % item for item in options.items())


def test_azure_objects_go_back_with_their_metadata(azurite, fd, tmp_path, bucket_name):
    azurite.make_bucket(bucket_name)
    # Stored gzip-encoded: the backup keeps the bytes as stored (requests would decode them)
    azure_put(azurite, bucket_name, "report.csv", gzip.compress(b"a,b\n1,2\n"), content_type="text/csv",
              meta={"owner": "finance"}, headers={"Cache-Control": "no-cache", "Content-Encoding": "gzip",
                                                  "Content-Language": "fr", "Content-Disposition": "inline"})
    backup = fd.backup(plugin_string(azurite, buckets_include=bucket_name))
    assert backup.status == "T", backup.messages
    where = str(tmp_path / "disk")
    local = fd.restore(where=where)
    assert local.status == "T", local.messages
    path = os.path.join(where, "@libcloud", bucket_name, "report.csv")
    with open(path, "rb") as restored:
        assert gzip.decompress(restored.read()) == b"a,b\n1,2\n"
    assert os.getxattr(path, "user.libcloud.content-type") == b"text/csv"
    assert os.getxattr(path, "user.libcloud.meta.owner") == b"finance"
    assert os.getxattr(path, "user.libcloud.cache-control") == b"no-cache"

    target = bucket_name + "-back"
    restore = fd.restore(where=str(tmp_path / "spool"),
                         plugin_options="python3:restore_to=bucket:restore_bucket=" + target)
    assert restore.status == "T", restore.messages
    assert azurite.objects(target) == azurite.objects(bucket_name)
    assert azure_head(azurite, target, "report.csv") == azure_head(azurite, bucket_name, "report.csv")


def test_an_s3_backup_restores_into_azure(s3, photos, azurite, fd, tmp_path, bucket_name):
    """provider= given at restore names another store: none of the backup's connection options
    goes with it.  Tags and the storage class have no place in Azure: said once, not an error."""
    backup = fd.backup(plugin_string(s3, buckets_include=photos, prefetch_size="1M"))
    assert backup.status == "T", backup.messages
    target = bucket_name[:50] + "-az"
    restore = fd.restore(where=str(tmp_path / "spool"),
                         plugin_options=azure_restore_options(azurite, restore_bucket=target))
    assert restore.status == "T", restore.messages
    assert azurite.objects(target) == bucket_objects(s3, photos)
    described = azure_head(azurite, target, "cats/cat.webp")
    assert described["Content-Type"] == "image/webp"
    assert described["Cache-Control"] == "max-age=3600, public"
    assert described["Content-Disposition"] == 'attachment; filename="cat.webp"'
    assert described["Content-Language"] == "de-CH"
    assert described["meta"]["owner"] == "web-team"
    assert any("tags are not restored" in text for text in restore.texts()), restore.texts()


def test_an_azure_backup_restores_into_s3(azurite, s3, fd, tmp_path, bucket_name):
    azurite.make_bucket(bucket_name)
    azure_put(azurite, bucket_name, "data/report.csv", b"x,y\n", content_type="text/csv", meta={"owner": "finance"},
              headers={"Cache-Control": "no-cache"})
    backup = fd.backup(plugin_string(azurite, buckets_include=bucket_name))
    assert backup.status == "T", backup.messages
    options = "python3:restore_to=bucket:" + s3.plugin_options()
    restore = fd.restore(where=str(tmp_path / "spool"), plugin_options=options)
    assert restore.status == "T", restore.messages
    assert bucket_objects(s3, bucket_name) == {"data/report.csv": b"x,y\n"}
    described = head(s3, bucket_name, "data/report.csv")
    assert described["ContentType"] == "text/csv"
    assert described["CacheControl"] == "no-cache"
    assert described["Metadata"] == {"owner": "finance"}


def test_gzip_encoded_objects_are_saved_as_stored(s3, fd, tmp_path, bucket_name):
    """Content-Encoding: gzip is metadata of the object, not of the transfer: every GET path
    (curl, threads, direct streams) keeps the stored bytes."""
    small, large = gzip.compress(os.urandom(1000)), gzip.compress(os.urandom(2 * MiB))
    s3.make_bucket(bucket_name)
    put(s3, bucket_name, "small.gz", small, ContentEncoding="gzip", ContentType="application/json")
    put(s3, bucket_name, "large.gz", large, ContentEncoding="gzip")
    backup = fd.backup(plugin_string(s3, buckets_include=bucket_name, prefetch_size="1M"))
    assert backup.status == "T", backup.messages
    where = str(tmp_path / "disk")
    assert fd.restore(where=where).status == "T"
    assert restored_keys(where, bucket_name) == {"small.gz": small, "large.gz": large}
    target = bucket_name + "-gz"
    assert restore_into_bucket(fd, str(tmp_path / "spool"), restore_bucket=target).status == "T"
    assert bucket_objects(s3, target) == {"small.gz": small, "large.gz": large}
    assert head(s3, target, "small.gz")["ContentEncoding"] == "gzip"


def test_a_fileset_without_xattrs_is_warned_about(s3, photos, fd):
    """xattrsupport = no: Bareos never calls get_xattr, so the job says the metadata is not kept."""
    no_xattr = bytearray.fromhex("02c0000800")
    no_xattr[27 >> 3] &= ~(1 << (27 & 7))  # FO_XATTR off
    backup = fd.backup(plugin_string(s3, buckets_include=photos), fileset_options=bytes(no_xattr))
    assert backup.status == "T", backup.messages
    warnings = [text for text in backup.texts(M_WARNING) if "xattrsupport" in text]
    assert len(warnings) == 1, backup.texts()
    assert all(not record.xattrs for record in backup.files)


def test_a_filesystem_without_xattrs_restores_the_files_with_one_warning(moto, fd, tmp_path, bucket_name,
                                                                        monkeypatch):
    moto.make_bucket(bucket_name)
    for key in ("a", "b"):
        put(moto, bucket_name, key, key.encode(), ContentType="text/plain", Metadata={"k": "v"})
    assert fd.backup(plugin_string(moto, buckets_include=bucket_name)).status == "T"

    def refuse(*args, **kwargs):
        raise OSError(errno.ENOTSUP, os.strerror(errno.ENOTSUP))

    monkeypatch.setattr(os, "setxattr", refuse)  # the plugin runs in this process (the emulator)
    where = str(tmp_path / "noxattr")
    restore = fd.restore(where=where)
    assert restore.status == "T", restore.messages
    assert restored_keys(where, bucket_name) == {"a": b"a", "b": b"b"}
    warnings = restore.texts(M_WARNING)
    assert len(warnings) == 1 and "extended attributes" in warnings[0], restore.texts()


def test_a_mistyped_restore_option_fails_the_restore_once_naming_it(s3, photos, fd, tmp_path):
    assert fd.backup(plugin_string(s3, buckets_include=photos)).status == "T"
    restore = fd.restore(where=str(tmp_path / "spool"),
                         plugin_options="python3:restore_to=bucket:restore_buckett=elsewhere")
    assert restore.status == "f", restore.messages
    texts = [text for text in restore.texts() if "restore_buckett" in text]
    assert len(texts) == 1 and "restore_bucket" in texts[0].split("restore_buckett", 1)[1], restore.texts()
    assert s3.list_keys(photos)  # nothing touched


def test_an_object_backed_up_without_metadata_gets_a_content_type_from_its_key(s3, fd, tmp_path, bucket_name):
    """A backup from before metadata was kept (here: xattrsupport = no) has none to give back: the
    type is guessed from the key, as libcloud does, not from the spool file's name."""
    s3.make_bucket(bucket_name, {"page.html": b"<p>hi</p>", "data.bin": b"\0\1"})
    no_xattr = bytearray.fromhex("02c0000800")
    no_xattr[27 >> 3] &= ~(1 << (27 & 7))
    assert fd.backup(plugin_string(s3, buckets_include=bucket_name), fileset_options=bytes(no_xattr)).status == "T"
    target = bucket_name + "-typed"
    assert restore_into_bucket(fd, str(tmp_path / "spool"), restore_bucket=target).status == "T"
    assert head(s3, target, "page.html")["ContentType"] == "text/html"
    assert head(s3, target, "data.bin")["ContentType"] == "application/octet-stream"


def test_swift_keeps_what_its_listing_states_and_takes_an_s3_backup(swift, s3, photos, fd, tmp_path, bucket_name):
    """Swift, a third provider family: its listing's content type is kept at backup; an S3 backup
    restores into it with its content type and user metadata (X-Object-Meta-)."""
    swift.make_bucket(bucket_name)
    swift.put(bucket_name, "notes.txt", b"swift notes", headers={"Content-Type": "text/markdown"})
    assert fd.backup(plugin_string(swift, buckets_include=bucket_name), job_name="swift").status == "T"
    where = str(tmp_path / "disk")
    assert fd.restore(where=where, job_name="swift").status == "T"
    path = os.path.join(where, "@libcloud", bucket_name, "notes.txt")
    assert os.getxattr(path, "user.libcloud.content-type") == b"text/markdown"

    backup = fd.backup(plugin_string(s3, buckets_include=photos, prefetch_size="1M"))
    assert backup.status == "T", backup.messages
    target = bucket_name[:40] + "-from-s3"
    restore = fd.restore(where=str(tmp_path / "spool"),
                         plugin_options="python3:restore_to=bucket:restore_bucket=%s:%s" % (target, swift.plugin_options()))
    assert restore.status == "T", restore.messages
    assert swift.objects(target) == bucket_objects(s3, photos)
    _, headers = swift.request("HEAD", "%s/cats/cat.webp" % target)[:2]
    headers = {name.lower(): value for name, value in headers.items()}
    assert headers["content-type"] == "image/webp"
    assert headers["x-object-meta-owner"] == "web-team"
    assert headers["content-disposition"] == 'attachment; filename="cat.webp"'


def test_the_storage_class_goes_back_into_the_same_provider(moto, fd, tmp_path, bucket_name):
    moto.make_bucket(bucket_name)
    put(moto, bucket_name, "cold.bin", b"rarely read", StorageClass="STANDARD_IA")
    put(moto, bucket_name, "hot.bin", b"often read")
    assert fd.backup(plugin_string(moto, buckets_include=bucket_name)).status == "T"
    target = bucket_name + "-classes"
    assert restore_into_bucket(fd, str(tmp_path / "spool"), restore_bucket=target).status == "T"
    client = moto.boto3_client()
    assert client.head_object(Bucket=target, Key="cold.bin").get("StorageClass") == "STANDARD_IA"
    assert client.head_object(Bucket=target, Key="hot.bin").get("StorageClass") in (None, "STANDARD")


def test_restore_options_of_the_fileset_unused_by_a_restore_to_disk_are_said(s3, photos, fd, tmp_path):
    assert fd.backup(plugin_string(s3, buckets_include=photos, restore_prefix="back/")).status == "T"
    restore = fd.restore(where=str(tmp_path / "disk"))
    assert restore.status == "T", restore.messages
    warnings = [text for text in restore.texts(M_WARNING) if "restore_prefix" in text]
    assert len(warnings) == 1, restore.texts()


def test_a_store_that_fails_the_existence_check_is_asked_again(moto, proxy, fd, tmp_path, bucket_name):
    """replace=never asks whether the key exists (HEAD): a 503 there is retried like an upload."""
    moto.make_bucket(bucket_name, {"a.txt": b"a"})
    assert fd.backup(plugin_string(moto, buckets_include=bucket_name)).status == "T"
    target = bucket_name + "-head"
    moto.make_bucket(target)
    proxy.respond(503, times=2, method="HEAD", match="/%s/a.txt" % target)
    restore = fd.restore(where=str(tmp_path / "spool"), replace="never",
                         plugin_options="python3:restore_to=bucket:restore_bucket=%s:port=%d:retry_max_wait=0"
                         % (target, proxy.port))
    assert restore.status == "T", restore.messages
    assert bucket_objects(moto, target) == {"a.txt": b"a"}
    assert any("2 requests retried" in text for text in restore.texts()), restore.texts()
