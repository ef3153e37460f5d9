"""A listing-only S3 endpoint for bench.py ``--only l`` and shard_listing.py: buckets of many
keys, stored nowhere.

Uploading 1M objects to radosgw takes most of an hour here; the plugin's memory while it lists
does not depend on who answers, so this server makes up its answers.  Bucket ``keys-N`` holds N
empty objects ``k/00000000`` ... in key order, all last modified in 2020, so a no-change
incremental lists every one of them and saves none.  Bucket ``tree-N-P`` (``tree-N-P-R``) holds
N such objects spread evenly over P top-level prefixes ``d00000/`` ... (``d00000/k00000000`` ...),
and R more at the top level (``r000000`` ...), for listings with a delimiter (shard_by=prefix).
It answers what the lister asks: HEAD of a bucket, ListObjects (v1: ``marker``, ``prefix``,
``delimiter``, ``max-keys``, ``encoding-type``) and the list of buckets, and counts the listing
requests (``requests``: ``{(bucket, "delimiter" or "flat"): count}``).  It checks no signature;
it listens on 127.0.0.1 only.
"""

import bisect
import collections
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

BUCKET = re.compile(r"^/keys-(\d+)/?$")
TREE = re.compile(r"^/(tree-(\d+)-(\d+)(?:-(\d+))?)/?$")
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


class Tree:
    """The sorted keys of a ``tree-N-P[-R]`` bucket, listed as S3 lists (with a delimiter too)."""

    def __init__(self, name, count, prefixes, root=0):
        self.name = name
        keys = []
        for j in range(prefixes):
            per = count // prefixes + (1 if j < count % prefixes else 0)
            keys.extend("d%05d/k%08d" % (j, i) for i in range(per))
        keys.extend("r%06d" % i for i in range(root))
        self.keys = sorted(keys)

    def page(self, query):
        prefix = query.get("prefix", [""])[0]
        marker = query.get("marker", [""])[0]
        delimiter = query.get("delimiter", [""])[0]
        size = min(int(query.get("max-keys", ["1000"])[0]), 1000)
        encoding = query.get("encoding-type", [""])[0]
        keys = self.keys
        start = bisect.bisect_left(keys, prefix)
        if marker:
            if delimiter and marker.endswith(delimiter) and marker.startswith(prefix):
                # after a common prefix: past every key under it
                start = max(start, bisect.bisect_left(keys, marker[:-1] + chr(ord(delimiter[-1]) + 1)))
            else:
                start = max(start, bisect.bisect_right(keys, marker))
        contents, commons, index, last = [], [], start, None
        while index < len(keys) and keys[index].startswith(prefix) and len(contents) + len(commons) < size:
            key = keys[index]
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                common = key[: cut + 1]
                commons.append(common)
                last = common
                index = bisect.bisect_left(keys, common[:-1] + chr(ord(delimiter[-1]) + 1))
            else:
                contents.append(key)
                last = key
                index += 1
        truncated = index < len(keys) and keys[index].startswith(prefix)
        return "".join([
            '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult %s><Name>%s</Name>' % (NS, self.name),
            "<Prefix>%s</Prefix><Marker>%s</Marker><MaxKeys>%d</MaxKeys>" % (prefix, marker, size),
            "<Delimiter>%s</Delimiter>" % delimiter if delimiter else "",
            "<EncodingType>url</EncodingType>" if encoding == "url" else "",
            "<IsTruncated>%s</IsTruncated>" % ("true" if truncated else "false"),
            "<NextMarker>%s</NextMarker>" % last if truncated and delimiter else "",
            "".join(ENTRY % k for k in contents),
            "".join("<CommonPrefixes><Prefix>%s</Prefix></CommonPrefixes>" % c for c in commons),
            "</ListBucketResult>",
        ])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the head and the body go out at once, not 40 ms apart
    buckets = ()
    trees = {}
    requests = None
    lock = None

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
        path = urlsplit(self.path).path
        match = BUCKET.match(path)
        tree = TREE.match(path)
        known = (match and int(match.group(1)) in self.buckets) or (tree and tree.group(1) in self.trees)
        self._answer(200 if known else 404, head=True)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/":
            names = "".join("<Bucket><Name>%s</Name><CreationDate>%s</CreationDate></Bucket>" % (n, MTIME)
                            for n in ["keys-%d" % n for n in self.buckets] + sorted(self.trees))
            body = "<ListAllMyBucketsResult %s><Buckets>%s</Buckets></ListAllMyBucketsResult>" % (NS, names)
            return self._answer(200, body.encode())
        query = parse_qs(url.query, keep_blank_values=True)
        tree = TREE.match(url.path)
        if tree and tree.group(1) in self.trees:
            self._count(tree.group(1), query)
            return self._answer(200, self.trees[tree.group(1)].page(query).encode())
        match = BUCKET.match(url.path)
        if not match or int(match.group(1)) not in self.buckets:
            return self._answer(404, b"<Error><Code>NoSuchBucket</Code></Error>")
        count = int(match.group(1))
        self._count("keys-%d" % count, query)
        self._answer(200, listing_page("keys-%d" % count, count, query).encode())

    def _count(self, bucket, query):
        with self.lock:
            self.requests[(bucket, "delimiter" if query.get("delimiter", [""])[0] else "flat")] += 1


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """A client that closed its keep-alive connection is no error worth a traceback."""
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class ListingServer:
    """Serves the buckets ``keys-N`` for each N in ``counts`` and the ``tree-N-P[-R]`` buckets named
    in ``trees``; ``plugin_options()`` as tests/servers.py."""

    provider = "S3"
    key, secret, region = "listing-key", "listing-secret", "us-east-1"
    host = "127.0.0.1"

    def __init__(self, counts=(), trees=()):
        made = {}
        for name in trees:
            match = TREE.match("/" + name)
            if not match:
                raise ValueError("a tree bucket is named tree-N-P or tree-N-P-R, not %r" % name)
            made[name] = Tree(name, int(match.group(2)), int(match.group(3)), int(match.group(4) or 0))
        self.requests = collections.Counter()
        handler = type("Handler", (_Handler,), {"buckets": frozenset(counts), "trees": made,
                                                "requests": self.requests, "lock": threading.Lock()})
        self.httpd = _Server((self.host, 0), handler)
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
