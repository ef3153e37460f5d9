"""Reading one object's bytes through libcloud (runs in a prefetcher process).

For the S3 family the GET goes through the driver's own signed connection so that the response
headers (size, ETag, Last-Modified) are known before the first byte is handed on, and a broken
transfer resumes with a ranged GET guarded by ``If-Match`` (same ETag, same object).  Other
providers use the generic ``download_object_as_stream`` and report the listed attributes; where
the driver reads from an offset (Azure Blobs, Swift, ...), a broken transfer resumes with
``download_object_range_as_stream``, and since that cannot be made conditional, the object's
ETag is asked for at the end: the copy counts only if it is still the listed one.  Where the
driver cannot, BrokenTransfer lets the prefetcher read the object again from the start, as long
as none of it was handed on.

Integrity: the byte count must equal the announced size, and where the ETag is a plain MD5
(no ``-N`` multipart suffix, no SSE-KMS/SSE-C) the MD5 of the bytes must match it; outside the
S3 family, so must the content MD5 a listing states (Azure block blobs).
"""

import hashlib
import re
import sys

from .driver import is_s3_family
from .retry import RESUMED, Transient, is_transient_status

#: Bytes per chunk: Bareos reads 256 KiB at a time, so a chunk goes to Bareos without slicing.
CHUNK_SIZE = 256 * 1024
_PLAIN_MD5 = re.compile(r"^[0-9a-f]{32}$")


class ObjectVanished(Exception):
    """The object no longer exists (404)."""


class FetchError(Exception):
    """The object could not be read; the message names the cause (no secrets)."""


class ObjectChanged(FetchError):
    """The object changed while it was read (the ETag no longer matches)."""


class ChangedSinceListed(FetchError):
    """A read from byte 0 that had to find the listed version (``If-Match``: its attributes went
    to Bareos from the listing) found another one: reading it again would not help."""

    def __init__(self, detail="it no longer has the listed ETag"):
        super().__init__("the object changed after its attributes were sent to Bareos (%s); "
                         "the next backup saves it" % detail)


class CorruptRead(FetchError):
    """The bytes read do not match the ETag's MD5 (worth reading again)."""


class BrokenTransfer(FetchError):
    """The transfer broke and this provider cannot resume it (worth reading again from the start)."""


class ObjectStream:
    """An open download: ``size``, ``mtime``, ``etag``, an iterator of byte chunks, and ``md5``:
    the MD5 (hex) the bytes must have, where it is known."""

    def __init__(self, size, mtime, etag, chunks, md5=None):
        self.size = size
        self.mtime = mtime
        self.etag = etag
        self.chunks = chunks
        self.md5 = md5


def _container(driver, bucket):
    from libcloud.storage.base import Container

    return Container(name=bucket, extra={}, driver=driver)


def range_headers(start, etag):
    """The headers of a GET from byte ``start`` that only the version with ``etag`` answers
    (a resume, or an object whose listed attributes went to Bareos already)."""
    headers = {}
    if start:
        headers["Range"] = "bytes=%d-" % start
    if etag:
        headers["If-Match"] = '"%s"' % etag
    return headers


def precondition_failed(start):
    """What a 412 to a GET with ``If-Match`` means: changed while read (a resume) or since listed."""
    return ObjectChanged("the object changed while it was read") if start else ChangedSinceListed()


def describe(status, headers, start, key="", body=None):
    """``(size, mtime, etag, md5_checkable)`` of a GET's answer; ``headers`` with lowercase names.

    Raises ObjectVanished (404), ObjectChanged (412 to a resume, or a whole object where a range
    was asked for), ChangedSinceListed (412 from byte 0), Transient (429/5xx) or FetchError
    (``body()``, the error document, names the reason where it can: see error_of).  Used by the
    prefetchers and by the job's direct streams (direct.py) alike.  The size is -1 when the
    answer does not state it (no Content-Length).
    """
    from .timeutil import to_epoch

    if status == 404:
        raise ObjectVanished()
    if status == 412:
        raise precondition_failed(start)
    if start and status == 200:
        raise ObjectChanged("the object changed while it was read")
    if is_transient_status(status):
        raise Transient("HTTP %s" % status)
    if status == 416 and start:
        raise FetchError("the object ends before byte %d, fewer bytes than its size" % start)
    if status not in (200, 206):
        raise error_of(status, body() if body is not None else "", key)
    length = int(headers.get("content-length", "-1"))
    if status == 206:
        total = headers.get("content-range", "").rpartition("/")[2]
        size = int(total) if total.isdigit() else (start + length if length >= 0 else -1)
    else:
        size = length
    try:
        mtime = to_epoch(headers.get("last-modified"))
    except ValueError:
        mtime = None
    etag = (headers.get("etag") or "").strip('"') or None
    encrypted = "x-amz-server-side-encryption-customer-algorithm" in headers or (
        headers.get("x-amz-server-side-encryption", "") == "aws:kms"
    )
    return size, mtime, etag, bool(etag and _PLAIN_MD5.match(etag) and not encrypted)


def _open_s3(driver, bucket, key, start, etag):
    path = driver._get_object_path(_container(driver, bucket), key)
    try:
        response = driver.connection.request(path, method="GET", headers=range_headers(start, etag),
                                             stream=True, raw=True)
    except Exception as exc:  # noqa: BLE001 - libcloud raises for some statuses (403, 412)
        error = translate(exc, key)
        if isinstance(error, ObjectChanged) and etag:
            error = precondition_failed(start)
        raise error from None
    size, mtime, new_etag, checkable = describe(response.status, response.headers, start, key,
                                                lambda: response.body)
    return ObjectStream(size, mtime, new_etag, response.iter_content(CHUNK_SIZE), new_etag if checkable else None)


def _open_generic(driver, bucket, key, listed, start):
    from libcloud.storage.base import Object

    obj = Object(
        name=key,
        size=listed["size"],
        hash=listed.get("etag"),
        extra={},
        meta_data={},
        container=_container(driver, bucket),
        driver=driver,
    )
    if start:
        if not (listed.get("etag") and reads_ranges(driver)):
            raise FetchError("this provider cannot resume a broken download")
        chunks = driver.download_object_range_as_stream(obj, start_bytes=start, chunk_size=CHUNK_SIZE)
    else:
        chunks = driver.download_object_as_stream(obj, chunk_size=CHUNK_SIZE)
    return ObjectStream(None, listed.get("mtime"), listed.get("etag"), chunks, listed.get("md5"))


def reads_ranges(driver):
    """Whether the driver reads an object from an offset (libcloud's base class cannot)."""
    from libcloud.storage.base import StorageDriver

    return type(driver).download_object_range_as_stream is not StorageDriver.download_object_range_as_stream


def _confirm_unchanged(driver, bucket, key, etag, size, retry):
    """After a generic ranged resume: the object must still be the listed one (same ETag, and
    ``size`` bytes, in case a server ignored the range), or the bytes before and after the break
    may come from two versions of it."""
    attempts = retry.start(key)
    while True:
        try:
            current = driver.get_object(bucket, key)
            break
        except Exception as exc:  # noqa: BLE001 - translated, retried, re-raised
            error = translate(exc, key)
            if isinstance(error, ObjectVanished):
                raise ObjectChanged("the object was deleted while it was read") from None
            if not isinstance(error, Transient) or not attempts.retry(error):
                raise FetchError("cannot confirm the object after a resumed transfer: %s" % error) from None
    if (current.hash or "").strip('"') != etag or current.size != size:
        raise ObjectChanged("the object changed while it was read")


def _has_dot_segment(key):
    return any(segment in (".", "..") for segment in key.split("/"))


def access_denied(key):
    if _has_dot_segment(key):
        return FetchError("access denied by the object store (a key with '.' or '..' segments "
                          "can only be read with signature_version=4)")
    return FetchError("access denied by the object store")


def _element(document, name):
    match = re.search(r"<%s>([^<]*)</%s>" % (name, name), document)
    return match.group(1).strip() if match else ""


def error_of(status, document, key=""):
    """The FetchError for a GET refused with ``status`` and the S3 error ``document`` (bytes or
    text): objects no plain GET can read are named with their real reason."""
    if isinstance(document, (bytes, bytearray)):
        document = bytes(document).decode("utf-8", "replace")
    document = document or ""
    code = _element(document, "Code")
    if code == "InvalidObjectState":
        storage = _element(document, "StorageClass") or "an archive storage class"
        tier = _element(document, "AccessTier")
        return FetchError("archived in storage class %s%s, not readable without a restore request"
                          % (storage, " (%s)" % tier if tier else ""))
    if status == 400 and re.search(r"server.side.encryption|customer.provided.keys?|customer.key",
                                   _element(document, "Message"), re.IGNORECASE):
        return FetchError("encrypted with a customer key (SSE-C): the object store gives its bytes "
                          "only to a request that brings the key")
    if status in (401, 403):
        return access_denied(key)
    return FetchError("HTTP %s%s" % (status, ": %s" % code if code else ""))


def translate(exc, key=""):
    """A libcloud/requests/http.client exception as ObjectVanished, Transient or FetchError.

    Imports nothing: the job thread classifies the errors of its direct streams here, and the
    job's interpreter must not load libcloud (its requests brings compiled modules that fail
    from the second job on, real-fd-trace 8a).  An error class of a module that is not
    loaded cannot have been raised, so the classes are taken from the modules already loaded.
    """
    if isinstance(exc, (ObjectVanished, FetchError, Transient)):
        return exc
    error = _from_libcloud(exc, key)
    if error is not None:
        return error
    http_client = sys.modules.get("http.client")
    if (
        isinstance(exc, (OSError, EOFError))
        or (http_client is not None and isinstance(exc, http_client.HTTPException))
        or type(exc).__module__.startswith(("requests", "urllib3"))
    ):
        return Transient("%s: %s" % (type(exc).__name__, exc))
    return FetchError("%s: %s" % (type(exc).__name__, exc))


def _loaded(module, name):
    """``module.name`` if that module is loaded, else a class no exception is an instance of."""
    return getattr(sys.modules.get(module), name, _NeverRaised)


class _NeverRaised(Exception):
    """Stands for the error class of a module that is not loaded (so cannot have raised it)."""


def _from_libcloud(exc, key):
    """translate() for libcloud's own exceptions; None for any other."""
    if isinstance(exc, _loaded("libcloud.storage.types", "ObjectDoesNotExistError")):
        return ObjectVanished()
    if isinstance(exc, _loaded("libcloud.common.exceptions", "RateLimitReachedError")):
        return Transient("HTTP 429 (rate limited)")
    if isinstance(exc, _loaded("libcloud.common.types", "InvalidCredsError")):
        return error_of(403, getattr(exc, "value", None) or "", key)
    if isinstance(exc, _loaded("libcloud.common.exceptions", "BaseHTTPError")):
        code = getattr(exc, "code", None)
        if isinstance(code, int) and is_transient_status(code):
            return Transient("HTTP %s: %s" % (code, exc.message))
        return FetchError("HTTP %s: %s" % (code, exc.message))
    if isinstance(exc, _loaded("libcloud.common.types", "LibcloudError")):
        text = str(exc.value) if getattr(exc, "value", None) else type(exc).__name__
        match = re.search(r"[Ss]tatus code: (\d+)", text)
        if match:
            status = int(match.group(1))
            if status == 412:
                return ObjectChanged("the object changed while it was read")
            return Transient("HTTP %d" % status) if is_transient_status(status) else FetchError("HTTP %d" % status)
        return FetchError(text)
    return None


def open_object(driver, bucket, key, listed, retry, start=0, etag=None):
    """Open ``key`` for reading from byte ``start``, retrying transient failures."""
    attempts = retry.start(key)
    while True:
        try:
            if is_s3_family(driver):
                return _open_s3(driver, bucket, key, start, etag)
            return _open_generic(driver, bucket, key, listed, start)
        except Exception as exc:  # noqa: BLE001 - translated, retried, re-raised
            error = translate(exc, key)
            if not isinstance(error, Transient):
                raise error from None
            if not attempts.retry(error):
                raise FetchError("%s (gave up after %d attempts)" % (error, attempts.made)) from None


def read_object(driver, bucket, key, listed, retry, start=0, etag=None):
    """Yield ``(ObjectStream, chunk)`` pairs; the first and the last have an empty chunk.

    A transfer that breaks resumes from the byte reached (same ETag) up to ``retry`` attempts.
    ``start``/``etag`` continue a transfer another process began; ``etag`` with ``start`` 0
    pins the version to read (its listed attributes went to Bareos already): another version
    raises ChangedSinceListed.  Raises ObjectVanished, ObjectChanged or FetchError; the byte
    count and, where possible, the MD5 are checked.
    """
    stream = open_object(driver, bucket, key, listed, retry, start, etag)
    yield stream, b""  # the attributes are known before the first byte
    done = start
    digest = hashlib.md5() if stream.md5 and start == 0 else None
    s3 = is_s3_family(driver)
    pinned = bool(etag) and start == 0
    confirm = (start > 0 or pinned) and not s3  # a generic GET is not conditional
    resumes = retry.start(key)
    while True:
        try:
            for chunk in stream.chunks:
                if chunk:
                    done += len(chunk)
                    if digest is not None:
                        digest.update(chunk)
                    yield stream, chunk
            break
        except Exception as exc:  # noqa: BLE001 - a broken connection mid-body
            error = translate(exc, key)
            text = "the transfer broke after %d bytes: %s" % (done, error)
            if not isinstance(error, Transient):
                raise FetchError(text) from None
            if not stream.etag or not (s3 or reads_ranges(driver)):
                raise BrokenTransfer(text) from None
            if not resumes.retry(error, RESUMED):
                raise FetchError(text) from None
            resumed = open_object(driver, bucket, key, listed, retry, start=done, etag=stream.etag)
            stream.chunks = resumed.chunks
            confirm = confirm or (done > 0 and not s3)
    if confirm:
        try:
            _confirm_unchanged(driver, bucket, key, stream.etag, done, retry)
        except ObjectChanged:
            if pinned:
                raise ChangedSinceListed() from None
            raise
    if stream.size is not None and stream.size >= 0 and done != stream.size:
        raise FetchError("got %d bytes, the object store announced %d" % (done, stream.size))
    if stream.size is None or stream.size < 0:
        stream.size = done
    if digest is not None and digest.hexdigest() != stream.md5:
        what = "the ETag" if stream.md5 == stream.etag else "the MD5 the listing states,"
        raise CorruptRead("the MD5 of the bytes read does not match %s %s" % (what, stream.md5))
    yield stream, b""
