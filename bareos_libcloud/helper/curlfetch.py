"""Small objects of the S3 family through libcurl's multi interface (runs in a fetch helper).

One thread keeps every transfer in flight at once; libcurl parses HTTP in C and keeps the
connections alive.  libcloud still builds and signs each GET (transport.QuickSigner, with the
SigV4 key cached for the day), so regions, session tokens and signature versions are libcloud's.

This path settles only the plain case: a 200 whose body has the announced size and, where the
ETag is a plain MD5, that MD5.  Any other answer, a transfer error, or an object larger than the
job allowed to hold (it grew since the listing) goes to the thread path (fetcher.ThreadPath),
which reads it through fetch.read_object with every rule for errors, resumes and streams; a
transient failure is retried there, after the retry policy's wait, and counted.
"""

import hashlib

import pycurl

from .. import metadata
from ..answers import wrong_md5, wrong_size
from ..retry import RETRIED
from . import driver as driver_mod
from . import fetch
from .transport import QuickSigner, cache_signing_key

#: libcurl's errors that are not worth another request (the others: a network fault, retried).
_NOT_TRANSIENT = {pycurl.E_FILESIZE_EXCEEDED, pycurl.E_WRITE_ERROR}


class CurlPath:
    """Whole small objects, many at a time; ``fallback(request, after=None)`` takes what it cannot
    settle (``after``: the transient failure it met)."""

    def __init__(self, drv, config, outbox, fallback):
        self.drv = drv
        self.outbox = outbox
        self.fallback = fallback
        self.timeout = int(config.get("timeout") or 0)
        self.multi = pycurl.CurlMulti()
        self.spare = []
        self.running = {}  # seq -> easy handle
        self.followed = set()  # seqs sent again for their bucket's region
        self.signers = {}  # driver (the home one, one per region followed) -> its QuickSigner
        self.containers = {}  # (driver, bucket) -> libcloud's Container, which _get_object_path takes

    # -- the loop's interface ---------------------------------------------------------------
    def busy(self):
        return bool(self.running)

    def wait_set(self):
        """(readable, writable, failed, timeout in s) for select()."""
        readable, writable, failed = self.multi.fdset()
        timeout = self.multi.timeout()
        return readable, writable, failed, 1.0 if timeout < 0 else timeout / 1000.0

    def add(self, request):
        """Start ``request`` (a "get"); False when it is not a case for this path."""
        _, seq, bucket, key, listed, limit, start, etag = request
        if start or (listed.get("size") or 0) > limit:
            return False
        drv = driver_mod.driver_for_bucket(self.drv, bucket)
        signer = self.signers.get(drv)
        if signer is None:
            cache_signing_key(drv)
            signer = self.signers[drv] = QuickSigner(drv)
        container = self.containers.get((drv, bucket))
        if container is None:
            container = self.containers[(drv, bucket)] = fetch._container(drv, bucket)
        signed = signer.sign(drv._get_object_path(container, key), fetch.range_headers(0, etag))
        handle = self.spare.pop() if self.spare else self._new_handle()
        handle.request = request
        handle.body = bytearray()
        handle.head = []
        handle.setopt(pycurl.URL, "%s://%s:%d%s" % ("https" if signed["secure"] else "http", signed["host"],
                                                     signed["port"], signed["target"]))
        handle.setopt(pycurl.HTTPHEADER, ["%s: %s" % item for item in signed["headers"].items()])
        handle.setopt(pycurl.WRITEFUNCTION, handle.body.extend)
        handle.setopt(pycurl.HEADERFUNCTION, handle.head.append)
        handle.setopt(pycurl.MAXFILESIZE, max(limit, 1))
        if signed["secure"]:
            handle.setopt(pycurl.SSL_VERIFYPEER, 1 if signed["verify"] else 0)
            handle.setopt(pycurl.SSL_VERIFYHOST, 2 if signed["verify"] else 0)
            if signed["cafile"]:
                handle.setopt(pycurl.CAINFO, signed["cafile"])
        self.multi.add_handle(handle)
        self.running[seq] = handle
        return True

    def cancel(self, seq):
        """Drop a transfer of this path; False when it has none under ``seq``."""
        handle = self.running.pop(seq, None)
        self.followed.discard(seq)
        if handle is None:
            return False
        self.multi.remove_handle(handle)
        self._recycle(handle)
        return True

    def step(self):
        """Move every transfer along and settle those that ended."""
        while self.multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        while True:
            left, done, failed = self.multi.info_read()
            for handle in done:
                self._ended(handle, 0, "")
            for handle, errno, text in failed:
                self._ended(handle, errno, text)
            if not left:
                return

    # -- transfers --------------------------------------------------------------------------
    def _new_handle(self):
        handle = pycurl.Curl()
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.PATH_AS_IS, 1)  # "." and ".." segments are the key's, not to be squashed
        handle.setopt(pycurl.PROXY, "")  # no *_proxy variables: driver.py keeps requests where one is set
        handle.setopt(pycurl.FOLLOWLOCATION, 0)
        if self.timeout:
            handle.setopt(pycurl.CONNECTTIMEOUT, self.timeout)
            handle.setopt(pycurl.LOW_SPEED_LIMIT, 1)
            handle.setopt(pycurl.LOW_SPEED_TIME, self.timeout)
        return handle

    def _recycle(self, handle):
        handle.request = handle.body = handle.head = None
        self.spare.append(handle)

    def _ended(self, handle, errno, text):
        request = handle.request
        seq, key = request[1], request[3]
        self.running.pop(seq, None)
        self.multi.remove_handle(handle)
        again = seq in self.followed
        self.followed.discard(seq)
        status = handle.getinfo(pycurl.RESPONSE_CODE) if not errno else 0
        body, head = handle.body, handle.head
        self._recycle(handle)
        if errno:
            if errno in _NOT_TRANSIENT:
                self.fallback(request)
            else:
                self.fallback(request, after="%s (curl error %d)" % (text, errno))
        elif status == 200:
            why = self._deliver(request, body, head)
            if why is not None:
                self.outbox.send((RETRIED, self.outbox.scrub("reading %r again from the start: %s" % (key, why))))
                self.fallback(request)
        else:
            self._refused(request, status, body, head, again)

    def _refused(self, request, status, body, head, again):
        """An answer other than 200, read by the rules every GET follows (fetch.describe): its
        outcome goes to the job, or the request to the thread path (a transient failure is
        retried there after the policy's wait; a region answer is followed by libcloud)."""
        seq, key = request[1], request[3]
        try:
            fetch.describe(status, parse_headers(head), 0, key, lambda: bytes(body).decode("utf-8", "replace"))
        except fetch.ObjectVanished:
            self.fallback(("confirm-vanished",) + tuple(request[1:]))  # a HEAD tells a deleted object
            return
        except fetch.Transient as exc:
            self.fallback(request, after=str(exc))
            return
        except fetch.OtherRegion as exc:
            if not again and self._follow(request, exc.region):
                return
        except fetch.FetchError as exc:
            self.outbox.send(("error", seq, self.outbox.scrub(str(exc))))
            return
        self.fallback(request)  # a region to follow, or an answer (206...) that no GET here asks for

    def _deliver(self, request, body, head):
        """Send a 200's object; None when sent (or handed on), else why it was not (it is read
        again).  An object with tags goes to the thread path, which reads them as well."""
        seq, key = request[1], request[3]
        headers = parse_headers(head)
        if metadata.tag_count(headers):
            self.fallback(request)
            return None
        try:
            size, mtime, etag, checkable = fetch.describe(200, headers, 0, key)
        except fetch.FetchError as exc:
            return str(exc)
        problem = wrong_size(len(body), size) or (checkable and wrong_md5(hashlib.md5(body).hexdigest(), etag))
        if problem:
            return problem
        self.outbox.send(("object", seq, key, len(body), mtime, etag, metadata.from_headers(headers), len(body)),
                         body)
        return None

    def _follow(self, request, region):
        """Send ``request`` again, signed for the bucket's ``region`` (libcloud's RegionFollower
        keeps the driver for it, as on the thread path); False when this path does not.  A request
        answered so once more (``again``) goes to the thread path, which names the problem."""
        seq, bucket = request[1], request[2]
        if driver_mod.driver_for_bucket(self.drv, bucket) is self.drv:  # not yet followed (GETs run at once)
            try:
                driver_mod.follow_region(self.drv, bucket, region)
            except fetch.FetchError as exc:
                self.outbox.send(("error", seq, self.outbox.scrub(str(exc))))
                return True
        self.followed.add(seq)
        return self.add(request)


def parse_headers(lines):
    """{lowercase name: value} of the last response's header lines (bytes, as libcurl gives them)."""
    headers = {}
    for line in lines:
        text = line.decode("latin-1")
        if text.startswith("HTTP/"):
            headers = {}
            continue
        name, colon, value = text.partition(":")
        if not colon:
            continue
        name, value = name.strip().lower(), value.strip()
        headers[name] = "%s, %s" % (headers[name], value) if name in headers else value
    return headers
