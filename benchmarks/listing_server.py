"""A listing-only S3 endpoint for bench.py ``--only l``: buckets of a million keys, stored nowhere.

Uploading 1M objects to radosgw takes most of an hour here; the plugin's memory while it lists
does not depend on who answers, so this server makes up its answers.  Bucket ``keys-N`` holds N
empty objects ``k/00000000`` ... in key order, all last modified in 2020, so a no-change
incremental lists every one of them and saves none.  It answers what the lister asks: HEAD of a
bucket, ListObjects (v1: ``marker``, ``prefix``, ``max-keys``, ``encoding-type``) and the list
of buckets.  It checks no signature; it listens on 127.0.0.1 only.
"""

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

BUCKET = re.compile(r"^/keys-(\d+)/?$")
KEY_FORMAT = "k/%08d"
MTIME = "2020-01-01T00:00:00.000Z"
EMPTY_ETAG = "&quot;d41d8cd98f00b204e9800998ecf8427e&quot;"
ENTRY = ("<Contents><Key>%s</Key><LastModified>" + MTIME + "</LastModified><ETag>" + EMPTY_ETAG
         + "</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass></Contents>")
NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def first_index(marker, count):
    """Index of the first key after ``marker`` among k/00000000 ... (keys sort as their numbers)."""
    if marker < "k/":
        return 0
    digits = marker[2:10]
    if marker.startswith("k/") and len(digits) == 8 and digits.isdigit():
        return int(digits) + 1  # marker is that key, or sorts after it and before the next
    return count


def listing_page(bucket, count, query):
    prefix = query.get("prefix", [""])[0]
    marker = query.get("marker", [""])[0]
    page = min(int(query.get("max-keys", ["1000"])[0]), 1000)
    encoding = query.get("encoding-type", [""])[0]
    start = first_index(marker, count) if "k/".startswith(prefix) or prefix.startswith("k/") else count
    keys = [KEY_FORMAT % i for i in range(start, min(count, start + page))]
    keys = [k for k in keys if k.startswith(prefix)]
    truncated = start + page < count and bool(keys)
    return "".join([
        '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult %s><Name>%s</Name>' % (NS, bucket),
        "<Prefix>%s</Prefix><Marker>%s</Marker><MaxKeys>%d</MaxKeys>" % (prefix, marker, page),
        "<EncodingType>url</EncodingType>" if encoding == "url" else "",
        "<IsTruncated>%s</IsTruncated>" % ("true" if truncated else "false"),
        "".join(ENTRY % k for k in keys),
        "</ListBucketResult>",
    ])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    buckets = ()

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, status, body=b"", head=False):
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_HEAD(self):
        match = BUCKET.match(urlsplit(self.path).path)
        self._answer(200 if match and int(match.group(1)) in self.buckets else 404, head=True)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/":
            names = "".join("<Bucket><Name>keys-%d</Name><CreationDate>%s</CreationDate></Bucket>" % (n, MTIME)
                            for n in self.buckets)
            body = "<ListAllMyBucketsResult %s><Buckets>%s</Buckets></ListAllMyBucketsResult>" % (NS, names)
            return self._answer(200, body.encode())
        match = BUCKET.match(url.path)
        if not match or int(match.group(1)) not in self.buckets:
            return self._answer(404, b"<Error><Code>NoSuchBucket</Code></Error>")
        count = int(match.group(1))
        query = parse_qs(url.query, keep_blank_values=True)
        self._answer(200, listing_page("keys-%d" % count, count, query).encode())


class ListingServer:
    """Serves the buckets ``keys-N`` for each N in ``counts``; ``plugin_options()`` as tests/servers.py."""

    provider = "S3"
    key, secret, region = "listing-key", "listing-secret", "us-east-1"
    host = "127.0.0.1"

    def __init__(self, counts):
        handler = type("Handler", (_Handler,), {"buckets": frozenset(counts)})
        self.httpd = ThreadingHTTPServer((self.host, 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    @staticmethod
    def bucket(count):
        return "keys-%d" % count

    def plugin_options(self):
        return ":".join(["provider=%s" % self.provider, "key=%s" % self.key, "secret=%s" % self.secret,
                         "host=%s" % self.host, "port=%d" % self.port, "secure=false", "region=%s" % self.region])
