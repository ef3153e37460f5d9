"""Every provider the README names, end to end through the emulated bareos-fd, and the check of
the options that go to the libcloud driver.

S3, S3_RGW (also written in lower case), MINIO and GOOGLE_STORAGE (with an HMAC key) run against
moto, S3_RGW against radosgw too, AZURE_BLOBS against Azurite, OPENSTACK_SWIFT against Swift
itself: each backup is restored and compared byte for byte with what the store holds.

libcloud's driver constructors swallow keywords they do not know, so an option the plugin does
not read and the driver does not take used to change nothing, silently (``bucket_include=photos``
backed up every bucket): such a job now ends with one fatal message naming the option.
"""

import os

import pytest

from harness import REPO, MiB, plugin_string, restored_keys
from servers import free_port

from bareos_libcloud import naming

OBJECTS = {
    "a.txt": b"hello",
    "dir/b.bin": os.urandom(70000),
    "empty": b"",
    "sp ace+x": b"s",
    "big/streamed": os.urandom(2 * MiB + 17),  # over prefetch_size: streamed, not held whole
}
FAST = {"nb_prefetcher": 2, "prefetch_size": "1M", "retry_max_wait": 1}


def for_provider(server, provider, region=True, key_prefix="", **options):
    """``server``'s plugin string with ``provider`` instead of the server's own provider name."""
    text = plugin_string(server, **dict(FAST, **options))
    text = text.replace(":provider=%s:" % server.provider, ":provider=%s:" % provider, 1)
    text = text.replace(":key=%s:" % server.key, ":key=%s%s:" % (key_prefix, server.key), 1)
    if not region:
        text = text.replace(":region=%s" % server.region, "", 1)
    return text


def plugin_fatals(result):
    """The plugin's own M_FATAL messages (the emulated core adds its own after a fatal)."""
    return [t for t in result.texts(3) if t.startswith("python3-fd-mod: libcloud:")]


def saved(result):
    """``{key: bytes}`` of what a backup stored with data."""
    return {naming.parse_fname(r.fname)[1]: r.read_bytes() for r in result.files if r.cataloged and not r.deleted}


def plugin_output(result):
    return [t for t in result.texts() if t.startswith("python3-fd-mod:")]


def assert_backup_and_restore(fd, server, plugin, bucket, objects, tmp_path):
    result = fd.backup(plugin)
    assert result.status == "T", result.messages
    assert saved(result) == objects
    where = str(tmp_path / "restore")
    restore = fd.restore(where=where)
    assert restore.status == "T", restore.messages
    assert restored_keys(where, bucket) == objects
    for text in plugin_output(result) + plugin_output(restore):
        assert server.secret not in text and server.key not in text


# -- every named provider backs up and restores ------------------------------------------------


@pytest.mark.parametrize(
    "provider, region, key_prefix",
    [("S3_RGW", True, ""), ("s3_rgw", True, ""), ("MINIO", False, ""), ("S3", False, ""),
     ("GOOGLE_STORAGE", False, "GOOG1")],
    ids=["S3_RGW", "s3_rgw-lower-case", "MINIO", "S3", "GOOGLE_STORAGE-hmac"],
)
def test_s3_family_providers_back_up_and_restore_on_moto(moto, fd, bucket_name, tmp_path, provider, region,
                                                         key_prefix):
    """MINIO used to fail at once (its driver takes no ``timeout``).  GOOGLE_STORAGE with an
    HMAC key (``GOOG...``, Google's S3-interoperable XML API) used to take the ``host`` for its
    auth type and fail at the first request; moto checks no signature, so Google's signing itself
    is not proven here.  S3 takes no ``region=default`` and MINIO and GOOGLE_STORAGE no region at
    all, so their strings leave it out."""
    moto.make_bucket(bucket_name, OBJECTS)
    plugin = for_provider(moto, provider, region=region, key_prefix=key_prefix, buckets_include=bucket_name)
    assert_backup_and_restore(fd, moto, plugin, bucket_name, OBJECTS, tmp_path)


def test_s3_rgw_backs_up_and_restores_on_radosgw(rgw, fd, bucket_name, tmp_path):
    rgw.make_bucket(bucket_name, OBJECTS)
    plugin = for_provider(rgw, "s3_rgw", buckets_include=bucket_name)
    assert_backup_and_restore(fd, rgw, plugin, bucket_name, OBJECTS, tmp_path)


def test_azure_blobs_backs_up_and_restores_on_azurite(azurite, fd, bucket_name, tmp_path):
    azurite.make_bucket(bucket_name, OBJECTS)
    plugin = for_provider(azurite, "azure_blobs", buckets_include=bucket_name)
    assert_backup_and_restore(fd, azurite, plugin, bucket_name, OBJECTS, tmp_path)


def test_openstack_swift_backs_up_and_restores_on_swift(swift, fd, bucket_name, tmp_path):
    """Swift's servers run without auth middleware: the plugin reaches the account with
    ``ex_force_auth_token`` and ``ex_force_base_url``."""
    swift.make_bucket(bucket_name, OBJECTS)
    plugin = for_provider(swift, "openstack_swift", buckets_include=bucket_name)
    assert_backup_and_restore(fd, swift, plugin, bucket_name, OBJECTS, tmp_path)


def test_openstack_swift_builds_its_driver_and_fails_with_one_clear_message(fd):
    """Swift's own auth (v1.0, as its tempauth speaks it), with nothing listening at the auth URL:
    the driver is built from the plugin's options and the backup ends with one fatal message that
    says the connection was refused, not with a TypeError."""
    plugin = ("python3:module_path=%s:module_name=bareos-fd-libcloud:provider=OPENSTACK_SWIFT:"
              "key=test\\:tester:secret=SwiftSecret0:ex_force_auth_url=http\\://127.0.0.1\\:%d/auth/v1.0:"
              "ex_force_auth_version=1.0:retries=1:timeout=5" % (REPO, free_port()))
    result = fd.backup(plugin)
    assert result.status == "f"
    fatals = plugin_fatals(result)
    assert len(fatals) == 1, result.messages
    assert "connection refused" in fatals[0] and "TypeError" not in fatals[0], fatals
    assert not any("SwiftSecret0" in text for text in plugin_output(result))


def test_host_is_refused_where_the_driver_cannot_use_it(fd):
    """libcloud's OPENSTACK_SWIFT driver hands ``host`` to a connection that cannot take it."""
    plugin = ("python3:module_path=%s:module_name=bareos-fd-libcloud:provider=OPENSTACK_SWIFT:"
              "key=tester:secret=SwiftSecret0:host=127.0.0.1:ex_force_auth_version=1.0" % REPO)
    result = fd.backup(plugin)
    assert result.status == "f"
    fatals = plugin_fatals(result)
    assert len(fatals) == 1, result.messages
    assert "option host cannot be used with provider OPENSTACK_SWIFT" in fatals[0], fatals
    assert "ex_force_auth_url" in fatals[0]


# -- options neither the plugin nor the driver takes ---------------------------------------------


@pytest.mark.parametrize(
    "option, value, suggested",
    [
        ("bucket_include", "BUCKET", "buckets_include"),
        ("Buckets_Include", "BUCKET", "buckets_include"),
        ("bucket_exclude", "BUCKET", "buckets_exclude"),
        ("prefixes", "none/", "prefix"),
        ("regoin", "default", "region"),
    ],
)
def test_an_unknown_option_fails_the_job_naming_it_and_the_closest_name(moto, fd, bucket_name, option, value,
                                                                        suggested):
    moto.make_bucket(bucket_name, {"k": b"v"})
    plugin = plugin_string(moto, **{option: value.replace("BUCKET", bucket_name)})
    result = fd.backup(plugin)
    assert result.status == "f"
    fatals = plugin_fatals(result)
    assert len(fatals) == 1, result.messages
    assert "unknown option %s (did you mean %s?)" % (option, suggested) in fatals[0], fatals
    assert not result.files
    for text in plugin_output(result):
        assert moto.secret not in text and moto.key not in text


def test_an_unknown_option_in_the_credentials_file_fails_the_job(moto, fd, bucket_name, tmp_path):
    moto.make_bucket(bucket_name, {"k": b"v"})
    creds = tmp_path / "creds"
    creds.write_text("key=%s\nsecret=%s\nbucket_include=%s\n" % (moto.key, moto.secret, bucket_name))
    os.chmod(creds, 0o600)
    plugin = plugin_string(moto).replace(":key=%s:secret=%s" % (moto.key, moto.secret),
                                         ":credentials_file=%s" % creds)
    result = fd.backup(plugin)
    assert result.status == "f"
    fatals = plugin_fatals(result)
    assert len(fatals) == 1 and "unknown option bucket_include (did you mean buckets_include?)" in fatals[0], fatals
    assert not result.files


def test_an_option_another_driver_takes_is_refused_with_what_this_one_takes(moto, fd, bucket_name):
    """MINIO's driver takes no region (it was silently dropped)."""
    moto.make_bucket(bucket_name, {"k": b"v"})
    result = fd.backup(for_provider(moto, "MINIO", buckets_include=bucket_name))
    assert result.status == "f"
    fatals = plugin_fatals(result)
    assert len(fatals) == 1, result.messages
    assert "unknown option region" in fatals[0], fatals
    assert "the libcloud driver for MINIO, which takes: host, port, secret, secure)" in fatals[0], fatals
    assert not result.files


def test_the_tail_of_a_secret_with_an_unescaped_colon_is_not_shown(moto, fd, bucket_name):
    """``secret=abc:TAILofSECRET=x``: the second part may be the secret's, so it is not named."""
    moto.make_bucket(bucket_name, {"k": b"v"})
    plugin = plugin_string(moto, buckets_include=bucket_name).replace(
        ":secret=%s:" % moto.secret, ":secret=%s:TAILofSECRET=x:" % moto.secret)
    result = fd.backup(plugin)
    assert result.status == "f"
    fatals = plugin_fatals(result)
    assert len(fatals) == 1 and "follows a secret option" in fatals[0], fatals
    assert not any("TAILofSECRET" in text for text in plugin_output(result))


@pytest.mark.parametrize("server", ["moto", "azurite"])
def test_a_missing_secret_is_named(request, fd, bucket_name, server):
    server = request.getfixturevalue(server)
    server.make_bucket(bucket_name, {"k": b"v"})
    plugin = plugin_string(server, buckets_include=bucket_name).replace(":secret=%s" % server.secret, "")
    result = fd.backup(plugin)
    assert result.status == "f"
    fatals = plugin_fatals(result)
    assert len(fatals) == 1 and "mandatory option secret is missing" in fatals[0], fatals
    assert not result.files
