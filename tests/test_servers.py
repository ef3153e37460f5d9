"""The local S3 servers of tests/servers.py work for fixtures (boto3) and for libcloud."""

import hashlib

import pytest
from libcloud.storage.providers import Provider, get_driver

# Keys that libcloud mangles on write (see shared/reference/s3-servers.md) but boto3 keeps.
ODD_KEYS = ["a//b", "/lead", "a/../b", "a/./c", ".", "..", "sp ace", "\u00fc", "dirmarker/",
            "percent%20literal", "plus+sign", "q&x=1;y", "tab\there", "new\nline"]


def libcloud_driver(server):
    """Exactly how the plugin builds its driver from the option string's values."""
    cls = get_driver(getattr(Provider, server.provider))
    return cls(server.key, server.secret, host=server.host, port=server.port, secure=False,
               region=server.region)


def odd_keys_for(server):
    if type(server).__name__ == "MotoServer":
        # moto's URL routing (regex `.+`) does not match a newline: PUT gives 404.
        return [k for k in ODD_KEYS if "\n" not in k]
    return list(ODD_KEYS)


def test_libcloud_lists_and_downloads(s3, bucket_name):
    objects = {"dir/obj-%03d" % i: hashlib.sha256(b"%d" % i).digest() * (i + 1)
               for i in range(30)}
    objects["big"] = bytes(range(256)) * 4096 * 3  # 3 MiB
    s3.make_bucket(bucket_name, objects)

    driver = libcloud_driver(s3)
    container = driver.get_container(bucket_name)
    listed = {o.name: o.size for o in driver.iterate_container_objects(container)}
    assert listed == {k: len(v) for k, v in objects.items()}

    obj = driver.get_object(bucket_name, "big")
    assert b"".join(driver.download_object_as_stream(obj)) == objects["big"]
    obj = driver.get_object(bucket_name, "dir/obj-007")
    assert b"".join(driver.download_object_as_stream(obj)) == objects["dir/obj-007"]


def test_boto3_keeps_odd_keys_exactly(s3, bucket_name):
    keys = odd_keys_for(s3)
    objects = {k: ("<%s>" % k).encode() for k in keys}
    s3.make_bucket(bucket_name, objects)

    assert sorted(s3.list_keys(bucket_name)) == sorted(keys)
    client = s3.boto3_client()
    for k, v in objects.items():
        assert client.get_object(Bucket=bucket_name, Key=k)["Body"].read() == v, repr(k)
    # libcloud lists them exactly too (only its downloads of some of them go wrong)
    driver = libcloud_driver(s3)
    listed = [o.name for o in driver.iterate_container_objects(driver.get_container(bucket_name))]
    assert sorted(listed) == sorted(keys)


def test_moto_cannot_store_newline_keys(moto, bucket_name):
    """Documents a moto limit: keys containing '\\n' need the radosgw suite."""
    from botocore.exceptions import ClientError

    moto.make_bucket(bucket_name)
    with pytest.raises(ClientError):
        moto.boto3_client().put_object(Bucket=bucket_name, Key="new\nline", Body=b"x")


def test_make_bucket_many_objects_threaded(s3, bucket_name):
    objects = {"p%02d/o%04d" % (i % 7, i): b"%06d" % i for i in range(300)}
    s3.make_bucket(bucket_name, objects)
    assert sorted(s3.list_keys(bucket_name)) == sorted(objects)


def test_libcloud_create_container(s3, bucket_name):
    driver = libcloud_driver(s3)
    driver.create_container(bucket_name)
    assert bucket_name in [c.name for c in driver.iterate_containers()]


def test_plugin_options(s3):
    opts = s3.plugin_options()
    assert not opts.startswith(":") and not opts.endswith(":")
    parsed = dict(item.split("=", 1) for item in opts.split(":"))
    assert parsed == {"provider": s3.provider, "key": s3.key, "secret": s3.secret,
                      "host": "127.0.0.1", "port": str(s3.port), "secure": "false",
                      "region": s3.region}
    assert hasattr(Provider, parsed["provider"])


def test_rgw_checks_signatures(rgw, bucket_name):
    from libcloud.common.types import InvalidCredsError

    rgw.make_bucket(bucket_name, {"k": b"v"})
    cls = get_driver(getattr(Provider, rgw.provider))
    bad = cls(rgw.key, rgw.secret + "x", host=rgw.host, port=rgw.port, secure=False,
              region=rgw.region)
    with pytest.raises(InvalidCredsError):
        list(bad.iterate_container_objects(bad.get_container(bucket_name)))
