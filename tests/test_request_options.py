"""What every request of the S3 family carries or follows: requester pays (``request_payer``),
temporary credentials (``token``), and a bucket in another region than ``region`` says.

moto 5.2 models none of the three on the wire: it ignores ``x-amz-request-payer`` (and cannot
even store a bucket's RequestPayment configuration), accepts any session token, and serves a
bucket created in another region to a request signed for any region.  So against moto the fault
proxy's request log shows what each request carried, and the proxy gives Amazon S3's documented
answers for a bucket in another region.  radosgw enforces requester pays: a user other than the
bucket's owner is refused without the header.
"""

import os
import re
import uuid

import pytest

from faultproxy import FaultProxy, s3_error_body
from harness import MiB, REPO, plugin_string, restored_keys
from test_faults import ours, saved

M_FATAL = 3


def bucket_requests(proxy, bucket):
    """Every request of the job that names the bucket (listing pages, HEADs, GETs)."""
    return [e for e in proxy.log if e.path.split("/")[1:2] == [bucket]]


def s3_plugin(server, via, region="us-east-1", **options):
    """A plugin string for libcloud's Amazon S3 driver (SigV4, ``token``), pointed at ``server``
    (through ``via``) with ``region``."""
    text = "python3:module_path=%s:module_name=bareos-fd-libcloud:provider=S3:key=%s:secret=%s:host=%s:port=%d" \
           ":secure=false:region=%s" % (REPO, server.key, server.secret, via.host, via.port, region)
    for name, value in options.items():
        text += ":%s=%s" % (name, value)
    return text


# -- requester pays ---------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [("yes", True), ("requester", True), ("no", False)])
def test_request_payer_values(value, expected):
    from bareos_libcloud.options import OptionSet

    optset = OptionSet()
    optset.add_string("provider=S3:key=K:secret=S:request_payer=%s:" % value)
    opts = optset.build()
    assert opts.request_payer is expected and opts.driver_kwargs.request_payer is expected
    assert "request_payer" not in opts.driver_kwargs  # the plugin's option, not the driver's


def test_a_bad_request_payer_fails_the_job_at_its_start():
    from bareos_libcloud.options import OptionError, OptionSet

    optset = OptionSet()
    optset.add_string("provider=S3:key=K:secret=S:request_payer=owner:")
    with pytest.raises(OptionError) as err:
        optset.build()
    assert str(err.value) == "option request_payer='owner' is not a boolean (use yes or no)"


def test_request_payer_is_on_every_request(moto, proxy, fd, bucket_name):
    objects = {"small": b"s" * 100, "large": os.urandom(3 * MiB)}  # "large": a direct stream
    moto.make_bucket(bucket_name, objects)
    result = fd.backup(plugin_string(moto, via=proxy, buckets_include=bucket_name, prefetch_size="1M",
                                     nb_prefetcher=2, request_payer="yes"))
    assert result.status == "T", result.messages
    assert saved(result) == objects
    requests = bucket_requests(proxy, bucket_name)
    kinds = {(e.method, "object" if e.path.count("/") > 1 else "bucket") for e in requests}
    assert kinds == {("HEAD", "bucket"), ("GET", "bucket"), ("GET", "object")}  # HEAD, listing, GETs
    assert [e.header("x-amz-request-payer") for e in requests] == ["requester"] * len(requests)


def test_request_payer_on_radosgw(rgw, fd, bucket_name, tmp_path):
    """radosgw refuses a user other than the owner of a requester-pays bucket whose requests do
    not say that the requester pays; with request_payer=yes every one of them does."""
    objects = {"small": b"s" * 100, "large": os.urandom(3 * MiB + 1), "dir/x": b"x"}
    rgw.make_bucket(bucket_name, objects)
    owner = rgw.boto3_client()
    owner.put_bucket_request_payment(Bucket=bucket_name, RequestPaymentConfiguration={"Payer": "Requester"})
    uid = "payer-%s" % uuid.uuid4().hex[:8]
    key, secret = uid.upper().replace("-", "") + "KEY", uuid.uuid4().hex
    rgw.cluster.create_s3_user(uid, key, secret)
    owner.put_bucket_policy(Bucket=bucket_name, Policy=(
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam:::user/%s"]},'
        ' "Action": ["s3:GetObject", "s3:ListBucket"],'
        ' "Resource": ["arn:aws:s3:::%s", "arn:aws:s3:::%s/*"]}]}' % (uid, bucket_name, bucket_name)))
    with FaultProxy(rgw.host, rgw.port) as via:
        plugin = plugin_string(rgw, via=via, buckets_include=bucket_name, prefetch_size="1M", nb_prefetcher=2,
                               signature_version="4")
        plugin = plugin.replace(":key=%s:secret=%s:" % (rgw.key, rgw.secret), ":key=%s:secret=%s:" % (key, secret))

        refused = fd.backup(plugin)
        assert refused.status == "f", refused.messages
        assert [t for t in ours(refused, M_FATAL) if "access denied" in t or "refused the credentials" in t]

        via.clear()
        result = fd.backup(plugin + ":request_payer=yes")
        assert result.status == "T", result.messages
        assert saved(result) == objects
        requests = bucket_requests(via, bucket_name)
        assert {e.method for e in requests} == {"HEAD", "GET"}
        assert [e.header("x-amz-request-payer") for e in requests] == ["requester"] * len(requests)
    where = str(tmp_path / "restore")
    assert fd.restore(where=where).status == "T"
    assert restored_keys(where, bucket_name) == objects


# -- temporary credentials --------------------------------------------------------------------

TOKEN = "FQoGZXIvYXdzEXAMPLE//token+with/slashes=" + uuid.uuid4().hex


def test_a_session_token_is_on_every_request(moto, proxy, fd, bucket_name, tmp_path):
    """libcloud's S3 driver sends ``token`` as x-amz-security-token (moto accepts any)."""
    objects = {"small": b"s" * 100, "large": os.urandom(3 * MiB + 3)}
    moto.make_bucket(bucket_name, objects)
    creds = tmp_path / "creds"
    creds.write_text("token=%s\n" % TOKEN)
    creds.chmod(0o600)
    result = fd.backup(s3_plugin(moto, proxy, buckets_include=bucket_name, prefetch_size="1M", nb_prefetcher=2,
                                 credentials_file=str(creds), debug="yes"))
    assert result.status == "T", result.messages
    assert saved(result) == objects
    requests = bucket_requests(proxy, bucket_name)
    assert {e.method for e in requests} == {"HEAD", "GET"} and len(requests) >= 4
    assert [e.header("x-amz-security-token") for e in requests] == [TOKEN] * len(requests)
    assert TOKEN not in repr(result.messages) + repr(result.calls)


def test_a_session_token_echoed_by_the_store_is_masked(moto, proxy, fd, bucket_name, tmp_path):
    """Amazon S3 answers an expired session token with 400 ExpiredToken, an error document that
    holds the token (``<Token-0>``); the job message that quotes it shows *** in its place."""
    moto.make_bucket(bucket_name, {"k": b"v"})
    creds = tmp_path / "creds"
    creds.write_text("token=%s\n" % TOKEN)
    creds.chmod(0o600)
    body = s3_error_body("ExpiredToken", "The provided token has expired.").replace(
        b"</Error>", b"<Token-0>%s</Token-0></Error>" % TOKEN.encode())
    proxy.respond(400, body=body, times=None, method="GET", match=re.compile(r"^/%s\?" % bucket_name))
    result = fd.backup(s3_plugin(moto, proxy, buckets_include=bucket_name, credentials_file=str(creds),
                                 debug="yes"))
    assert result.status == "f", result.messages
    assert [t for t in ours(result, M_FATAL) if "ExpiredToken" in t and "<Token-0>***</Token-0>" in t], result.messages
    assert TOKEN not in repr(result.messages) + repr(result.calls)


# -- a bucket in another region ---------------------------------------------------------------

def permanent_redirect(bucket):
    """Amazon S3's answer to a request sent to another region's endpoint (path style)."""
    body = s3_error_body("PermanentRedirect", "The bucket you are attempting to access must be addressed using "
                         "the specified endpoint. Please send all future requests to this endpoint.").replace(
        b"</Error>", b"<Bucket>%s</Bucket><Endpoint>%s.s3.eu-west-1.amazonaws.com</Endpoint></Error>"
        % (bucket.encode(), bucket.encode()))
    return 301, body, {"x-amz-bucket-region": "eu-west-1"}


def wrong_signing_region(bucket):
    """Amazon S3's answer to a request signed for another region than the bucket's."""
    body = s3_error_body("AuthorizationHeaderMalformed", "The authorization header is malformed; the region "
                         "'us-east-1' is wrong; expecting 'eu-west-1'").replace(
        b"</Error>", b"<Region>eu-west-1</Region></Error>")
    return 400, body, {}


def in_eu_west_1(proxy, bucket, answer):
    """The bucket is in eu-west-1: a request for it signed for another region gets ``answer``
    (a HEAD, which has no body, with the region in x-amz-bucket-region, as S3 answers HeadBucket)."""
    status, body, headers = answer(bucket)
    match = re.compile(r"^/%s([/?]|$)" % re.escape(bucket))
    signed_elsewhere = {"Authorization": "/us-east-1/s3/aws4_request"}
    proxy.respond(status, headers={"x-amz-bucket-region": "eu-west-1"}, times=None, method="HEAD", match=match,
                  if_header=signed_elsewhere)
    proxy.respond(status, body=body, headers=headers, times=None, match=match, if_header=signed_elsewhere)


@pytest.mark.parametrize("answer", [permanent_redirect, wrong_signing_region])
def test_a_bucket_in_another_region_is_followed(moto, proxy, fd, bucket_name, tmp_path, answer):
    objects = {"small": b"s" * 100, "dir/more": b"m", "large": os.urandom(3 * MiB + 5)}
    moto.make_bucket(bucket_name, objects)
    in_eu_west_1(proxy, bucket_name, answer)
    result = fd.backup(s3_plugin(moto, proxy, buckets_include=bucket_name, prefetch_size="1M", nb_prefetcher=2))
    assert result.status == "T", result.messages
    assert saved(result) == objects
    requests = bucket_requests(proxy, bucket_name)
    answered = [e for e in requests if e.fault == "respond"]
    # once by the lister, each prefetcher and the signer (the job's direct stream), no more
    assert 1 <= len(answered) <= 4, [(e.method, e.path, e.status, e.fault, e.resp_headers) for e in requests]
    assert all("/eu-west-1/s3/" in e.header("Authorization") for e in requests if e.fault is None)
    assert {e.method for e in requests if e.fault is None} == {"HEAD", "GET"}
    where = str(tmp_path / "restore")
    assert fd.restore(where=where).status == "T"
    assert restored_keys(where, bucket_name) == objects


def test_a_region_answer_that_names_no_region_is_one_clear_message(moto, proxy, fd, bucket_name):
    moto.make_bucket(bucket_name, {"k": b"v"})
    proxy.respond(301, body=permanent_redirect(bucket_name)[1], times=None,
                  match=re.compile(r"^/%s([/?]|$)" % bucket_name))
    result = fd.backup(s3_plugin(moto, proxy, buckets_include=bucket_name))
    assert result.status == "f"
    assert ours(result, M_FATAL) == [
        "python3-fd-mod: libcloud: cannot list buckets at 127.0.0.1:%d: RegionNotFollowed: bucket %r: the object "
        "store answered 301: the bucket is served from another endpoint or region, and the "
        "answer does not say which region; give the bucket's region in option region\n" % (proxy.port, bucket_name)]
