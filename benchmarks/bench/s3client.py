"""Clients of the S3 server without the plugin: a minimal SigV4 signer and a boto3 client."""

import hashlib
import hmac
import time
from urllib.parse import quote

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class SigV4:
    """Minimal AWS SigV4 signer for GET without a body (path-style)."""

    def __init__(self, host, key, secret, region):
        self.host, self.key, self.secret, self.region = host, key, secret, region
        self._kdate = None

    def _signing_key(self, datestamp):
        if self._kdate is None or self._kdate[0] != datestamp:
            k = ("AWS4" + self.secret).encode()
            for part in (datestamp, self.region, "s3", "aws4_request"):
                k = hmac.new(k, part.encode(), hashlib.sha256).digest()
            self._kdate = (datestamp, k)
        return self._kdate[1]

    def headers(self, path, method="GET", payload_hash=EMPTY_SHA256):
        amzdate = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        datestamp = amzdate[:8]
        canonical = method + "\n%s\n\nhost:%s\nx-amz-content-sha256:%s\nx-amz-date:%s\n\nhost;x-amz-content-sha256;x-amz-date\n%s" % (
            path, self.host, payload_hash, amzdate, payload_hash)
        scope = "%s/%s/s3/aws4_request" % (datestamp, self.region)
        sts = "AWS4-HMAC-SHA256\n%s\n%s\n%s" % (amzdate, scope, hashlib.sha256(canonical.encode()).hexdigest())
        sig = hmac.new(self._signing_key(datestamp), sts.encode(), hashlib.sha256).hexdigest()
        return {
            "Host": self.host, "x-amz-date": amzdate, "x-amz-content-sha256": payload_hash,
            "Authorization": "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
                             "Signature=%s" % (self.key, scope, sig),
        }


def object_path(bucket, key):
    return "/%s/%s" % (bucket, quote(key, safe="/-_.~"))


def boto3_client(spec, pool=32):
    import boto3
    from botocore.config import Config

    try:
        cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"}, max_pool_connections=pool,
                     retries={"max_attempts": 3, "mode": "standard"},
                     request_checksum_calculation="when_required", response_checksum_validation="when_required")
    except TypeError:
        cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"}, max_pool_connections=pool)
    return boto3.client("s3", endpoint_url=spec["endpoint"], aws_access_key_id=spec["key"],
                        aws_secret_access_key=spec["secret"], region_name=spec["region"], config=cfg)
