"""Objects encrypted with a customer key (SSE-C), read with ``sse_customer_key_file``.

Without the option, each such object is named with its reason ("encrypted with a customer key
(SSE-C)") and counted as not saved; with it, every GET of such an object (prefetchers, the job's
direct streams and their resumes) brings the key's three headers, and the objects of the bucket
that are not encrypted so are still read.  The key never appears in any message.
"""

import base64
import hashlib
import os
import re
import socket
import subprocess

import pytest

from faultproxy import s3_error_body
from harness import MiB, plugin_string, restored_keys
from test_faults import accounting, ours, saved

M_ERROR = 4
KEY_HEADER = "x-amz-server-side-encryption-customer-key"
ALGORITHM_HEADER = "x-amz-server-side-encryption-customer-algorithm"
KEY_MD5_HEADER = "x-amz-server-side-encryption-customer-key-MD5"


def not_saved(result):
    """{key: reason} of the objects the job named as not saved."""
    out = {}
    for text in ours(result, M_ERROR):
        match = re.search(r"object '([^']*)' in bucket '[^']*' could not be saved: (.*)", text)
        if match:
            out[match.group(1)] = match.group(2)
    return out


def key_file(tmp_path, key, name="sse-c.key", encode=True):
    path = tmp_path / name
    path.write_bytes(base64.b64encode(key) + b"\n" if encode else key)
    path.chmod(0o600)
    return str(path)


def b64(key):
    return base64.b64encode(key).decode()


def key_md5(key):
    return base64.b64encode(hashlib.md5(key).digest()).decode()


def assert_never_shown(key, *results):
    """Neither the key (base64 or raw) nor its file's text in any message or debug line."""
    forms = (b64(key), key.hex())
    for result in results:
        everything = repr(result.messages) + repr(result.calls)
        assert not [form for form in forms if form in everything]


# -- radosgw: the real thing ------------------------------------------------------------------

@pytest.fixture
def rgw_sse_c(rgw):
    """radosgw with SSE-C over plain HTTP (its ``rgw_crypt_require_ssl``, on by default, makes it
    refuse customer keys sent over HTTP); set back when the test ends."""
    asok = os.path.join(rgw.ceph_dir, "run", "client.rgw.x.asok")

    def set_require_ssl(value):
        from miniceph import tool_environment

        subprocess.run(["ceph", "--admin-daemon", asok, "config", "set", "rgw_crypt_require_ssl", value],
                       check=True, capture_output=True, env=tool_environment(), timeout=60)

    set_require_ssl("false")
    yield rgw
    set_require_ssl("true")


def test_sse_c_objects_on_radosgw(rgw_sse_c, fd, bucket_name, tmp_path):
    """radosgw encrypts with the customer key and refuses a GET without it (400 InvalidArgument)
    or with another key (400, "The calculated MD5 hash of the key did not match"), and ignores
    the key's headers on an object not encrypted with one."""
    rgw = rgw_sse_c
    key, other = os.urandom(32), os.urandom(32)
    plain = {"plain": b"plain bytes", "big-plain": os.urandom(3 * MiB + 5)}
    encrypted = {"enc": b"secret bytes", "big-enc": os.urandom(5 * MiB + 3), "empty-enc": b""}
    rgw.make_bucket(bucket_name, plain)
    client = rgw.boto3_client()
    for name, data in encrypted.items():
        client.put_object(Bucket=bucket_name, Key=name, Body=data, SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    client.put_object(Bucket=bucket_name, Key="other-key", Body=b"x" * 1000, SSECustomerAlgorithm="AES256",
                      SSECustomerKey=other)
    options = dict(buckets_include=bucket_name, nb_prefetcher=2, prefetch_size="1M")

    without = fd.backup(plugin_string(rgw, **options))
    assert without.status == "W", without.messages
    assert saved(without) == plain
    reasons = not_saved(without)
    assert set(reasons) == set(encrypted) | {"other-key"}
    assert all(reason.startswith("encrypted with a customer key (SSE-C)") and "sse_customer_key_file" in reason
               for reason in reasons.values()), reasons
    assert accounting(without) == (6, 2, 0, 0, 4)

    path = key_file(tmp_path, key)
    with_key = fd.backup(plugin_string(rgw, sse_customer_key_file=path, **options))
    assert with_key.status == "W", with_key.messages
    assert saved(with_key) == dict(plain, **encrypted)
    assert not_saved(with_key) == {"other-key": "encrypted with a customer key (SSE-C) other than the one in "
                                                "sse_customer_key_file: the object store refused that key"}
    assert accounting(with_key) == (6, 5, 0, 0, 1)

    os.unlink(path)  # a restore needs no key (nor its file): the bytes are in the backup
    where = str(tmp_path / "restore")
    restore = fd.restore(where=where)
    assert restore.status == "T", restore.messages
    assert restored_keys(where, bucket_name) == dict(plain, **encrypted)
    assert_never_shown(key, without, with_key, restore)


# -- Amazon S3's answers, through the fault proxy ----------------------------------------------

NEEDS_KEY = s3_error_body("InvalidRequest", "The object was stored using a form of Server Side Encryption. "
                                            "The correct parameters must be provided to retrieve the object.")
NOT_APPLICABLE = s3_error_body("InvalidRequest", "The encryption parameters are not applicable to this object.")


def as_amazon_encrypts(proxy, bucket, name, key):
    """Answer the GETs of ``name`` as Amazon S3 answers for an object encrypted with ``key``: 400
    without a key, 403 with another, and with it the bytes, the customer-algorithm and key-MD5
    headers, and an ETag that is not the MD5 of the bytes."""
    match = re.compile(r"^/%s/%s(\?|$)" % (re.escape(bucket), re.escape(name)))
    proxy.respond(400, body=NEEDS_KEY, times=None, method="GET", match=match, if_header={KEY_HEADER: None})
    proxy.set_headers({"ETag": '"%s"' % hashlib.md5(b"not the bytes").hexdigest(), ALGORITHM_HEADER: "AES256",
                       KEY_MD5_HEADER: key_md5(key)},
                      times=None, method="GET", match=match, if_header={KEY_HEADER: b64(key)})
    proxy.respond(403, times=None, method="GET", match=match, if_header={KEY_HEADER: True})


def as_amazon_plain(proxy, bucket, name):
    """Answer as Amazon S3 does a GET that brings a customer key for an object not encrypted with one."""
    match = re.compile(r"^/%s/%s(\?|$)" % (re.escape(bucket), re.escape(name)))
    proxy.respond(400, body=NOT_APPLICABLE, times=None, method="GET", match=match, if_header={KEY_HEADER: True})


def test_sse_c_as_amazon_s3_answers(moto, proxy, fd, bucket_name, tmp_path):
    """moto 5.2 does not model SSE-C (it stores and returns the bytes with any key or none), so
    the fault proxy gives Amazon S3's documented answers: 400 InvalidRequest to a GET without the
    key of an encrypted object, 403 AccessDenied to one with another key, 400 InvalidRequest
    ("not applicable") to one that brings a key for an object not encrypted with one; and the
    encrypted object's ETag is not the MD5 of its bytes (the size is still checked)."""
    key, other = os.urandom(32), os.urandom(32)
    plain = {"plain-1": b"p1", "big-plain": os.urandom(3 * MiB + 1), "plain-2": b"p2"}
    encrypted = {"enc-1": b"e1", "big-enc": os.urandom(3 * MiB + 7), "enc-2": b"e2"}
    moto.make_bucket(bucket_name, dict(plain, **encrypted, **{"other-key": b"o"}))
    for name in encrypted:
        as_amazon_encrypts(proxy, bucket_name, name, key)
    as_amazon_encrypts(proxy, bucket_name, "other-key", other)
    for name in plain:
        as_amazon_plain(proxy, bucket_name, name)
    options = dict(via=proxy, buckets_include=bucket_name, nb_prefetcher=1, prefetch_size="1M", retry_max_wait=1)

    without = fd.backup(plugin_string(moto, **options))
    assert saved(without) == plain
    assert set(not_saved(without)) == set(encrypted) | {"other-key"}
    assert all(r.startswith("encrypted with a customer key (SSE-C)") for r in not_saved(without).values())
    assert all(e.header(KEY_HEADER) is None for e in proxy.entries(method="GET"))

    proxy.clear(log=True)
    for name in encrypted:
        as_amazon_encrypts(proxy, bucket_name, name, key)
    as_amazon_encrypts(proxy, bucket_name, "other-key", other)
    for name in plain:
        as_amazon_plain(proxy, bucket_name, name)
    result = fd.backup(plugin_string(moto, sse_customer_key_file=key_file(tmp_path, key), **options))
    assert result.status == "W", result.messages
    assert saved(result) == dict(plain, **encrypted)
    assert not_saved(result) == {"other-key": "encrypted with a customer key (SSE-C) other than the one in "
                                              "sse_customer_key_file: the object store refused that key"}
    for name in encrypted:  # the GET that read each encrypted object brought the key
        read = [e for e in proxy.entries(method="GET", match="/%s/%s" % (bucket_name, name)) if e.status == 200]
        assert [(e.header(ALGORITHM_HEADER), e.header(KEY_HEADER), e.header(KEY_MD5_HEADER)) for e in read] == [
            ("AES256", b64(key), key_md5(key))]
    for name in plain:
        read = [e for e in proxy.entries(method="GET", match="/%s/%s" % (bucket_name, name)) if e.status == 200]
        assert len(read) == 1 and read[0].header(KEY_HEADER) is None
    assert_never_shown(key, without, result)


def test_a_broken_stream_of_an_encrypted_object_resumes_with_the_key(moto, proxy, fd, bucket_name, tmp_path):
    """The ranged GET that resumes a direct stream, or a fetch helper's stream, brings the key too."""
    key = os.urandom(32)
    objects = {"direct": os.urandom(4 * MiB + 1), "prefetched": os.urandom(700 * 1024)}
    moto.make_bucket(bucket_name, objects)
    for name in objects:
        match = "/%s/%s" % (bucket_name, name)
        proxy.respond(400, body=NEEDS_KEY, times=None, method="GET", match=match, if_header={KEY_HEADER: None})
        # 300 KiB, time for the client to take them, then a reset: it resumes from 256 KiB
        proxy.stall(1.0, after_bytes=300 * 1024, then="reset", times=1, method="GET", match=match)
    result = fd.backup(plugin_string(moto, via=proxy, buckets_include=bucket_name, prefetch_size="1M",
                                     nb_prefetcher=1, retry_max_wait=1, sse_customer_key_file=key_file(tmp_path, key)))
    assert result.status == "T", result.messages
    assert saved(result) == objects
    for name in objects:
        gets = proxy.entries(method="GET", match="/%s/%s" % (bucket_name, name))
        resumes = [e for e in gets if e.header("Range")]
        assert resumes and all(e.header(KEY_HEADER) == b64(key) and e.header(KEY_MD5_HEADER) == key_md5(key)
                               for e in resumes), gets
    assert_never_shown(key, result)


# -- the option -------------------------------------------------------------------------------

BASE = "provider=S3_RGW:key=AKEY:secret=SEKRET:host=127.0.0.1:port=9000:secure=false:"


def build(text, need_remote=True):
    from bareos_libcloud.options import OptionSet

    optset = OptionSet()
    optset.add_string(text)
    return optset.build(need_remote=need_remote)


@pytest.mark.parametrize("encode", [True, False])
def test_the_key_file_holds_the_key_raw_or_in_base64(tmp_path, encode):
    key = os.urandom(32)
    opts = build(BASE + "sse_customer_key_file=%s:" % key_file(tmp_path, key, encode=encode))
    customer_key = opts.driver_kwargs.customer_key  # what the helpers get, with the driver options
    assert customer_key is opts.sse_customer_key_file
    assert customer_key.headers() == {ALGORITHM_HEADER: "AES256", KEY_HEADER: b64(key), KEY_MD5_HEADER: key_md5(key)}
    assert b64(key) in opts.secrets  # masked in every job message (JobLog) and helper message
    assert not opts.warnings
    assert b64(key) not in repr(opts) + repr(customer_key) + str(customer_key)


def test_a_key_typed_as_32_characters_is_a_secret_too(tmp_path):
    path = tmp_path / "typed.key"
    path.write_bytes(b"correct horse battery staple 123")
    path.chmod(0o600)
    opts = build(BASE + "sse_customer_key_file=%s:" % path)
    assert "correct horse battery staple 123" in opts.secrets


@pytest.mark.parametrize("content, size", [(b"", 0), (b"too short\n", 10), (base64.b64encode(b"k" * 16) + b"\n", 25),
                                           (b"\x00" * 33, 33)])
def test_a_key_file_without_a_256_bit_key_fails_the_job_at_its_start(tmp_path, content, size):
    from bareos_libcloud.options import OptionError

    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(OptionError) as err:
        build(BASE + "sse_customer_key_file=%s:" % path)
    assert str(err.value) == ("option sse_customer_key_file=%r: the file must hold a 256-bit key, as 32 raw bytes or "
                              "in base64 (it holds %d bytes, neither)" % (str(path), size))


@pytest.mark.parametrize("value, text", [("relative/key", "must be an absolute path"),
                                         ("/nonexistent/sse-c.key", "cannot be read: No such file or directory")])
def test_a_key_file_that_cannot_be_read_fails_the_job_at_its_start(value, text):
    from bareos_libcloud.options import OptionError

    with pytest.raises(OptionError) as err:
        build(BASE + "sse_customer_key_file=%s:" % value)
    assert str(err.value).startswith("option sse_customer_key_file=%r " % value) and text in str(err.value)


def test_a_key_file_readable_by_everyone_is_warned_about(tmp_path):
    path = key_file(tmp_path, os.urandom(32))
    os.chmod(path, 0o644)
    opts = build(BASE + "sse_customer_key_file=%s:" % path)
    assert opts.warnings == ["sse_customer_key_file %r is readable by everyone; chmod 600 it" % path]


def test_a_restore_needs_no_key_file():
    opts = build("sse_customer_key_file=/gone/on/this/client:", need_remote=False)
    assert opts.sse_customer_key_file is None


def test_the_key_is_a_secret_and_its_file_name_is_not():
    from bareos_libcloud.options import is_secret_option

    assert is_secret_option("sse_customer_key") and not is_secret_option("sse_customer_key_file")


@pytest.mark.parametrize("option", ["sse_customer_key_file", "request_payer"])
def test_the_options_are_for_the_s3_family_only(tmp_path, option):
    from bareos_libcloud.helper.driver import DriverSetupError, make_driver
    from bareos_libcloud.options import DriverKwargs, read_customer_key_file

    kwargs = DriverKwargs(key="account", secret=base64.b64encode(b"x" * 32).decode(), host="127.0.0.1", port=1,
                          secure=False)
    if option == "request_payer":
        kwargs.request_payer = True
    else:
        kwargs.customer_key = read_customer_key_file(option, key_file(tmp_path, os.urandom(32)))
    before = socket.getdefaulttimeout()
    try:
        with pytest.raises(DriverSetupError) as err:
            make_driver("AZURE_BLOBS", kwargs, 10)
    finally:
        socket.setdefaulttimeout(before)  # make_driver sets it for the helper process it runs in
    assert str(err.value) == "option %s is for providers of the S3 family; AZURE_BLOBS is not one" % option


def test_an_sse_kms_object_refused_to_a_signature_version_2_request_is_not_called_sse_c():
    """Amazon S3 refuses an SSE-KMS object to a SigV2 GET with a 400 whose message also speaks of
    "Server Side Encryption": the reason named is KMS's, not a customer key."""
    from bareos_libcloud.helper import fetch

    document = s3_error_body("InvalidArgument", "Requests specifying Server Side Encryption with AWS KMS managed "
                                                "keys require AWS Signature Version 4.")
    assert str(fetch.error_of(400, document, "k")).startswith(
        "encrypted with AWS KMS (SSE-KMS): the object store gives its bytes only to a request signed with "
        "signature version 4")
    assert isinstance(fetch.error_of(400, NEEDS_KEY, "k"), fetch.KeyNeeded)
