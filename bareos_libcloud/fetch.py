"""Reading one object's bytes through libcloud (runs in a prefetcher process).

For the S3 family the GET goes through the driver's own signed connection so that the response
headers (size, ETag, Last-Modified) are known before the first byte is handed on, and a broken
transfer can resume with a ranged GET.  Other providers use the generic
``download_object_as_stream`` and report the listed attributes.
"""

import time

from .timeutil import to_epoch

CHUNK_SIZE = 1024 * 1024
RETRIES = 3


class ObjectVanished(Exception):
    """The object no longer exists (404)."""


class FetchError(Exception):
    """The object could not be read; the message names the cause (no secrets)."""


class ObjectStream:
    """An open download: ``size``, ``mtime``, ``etag`` and an iterator of byte chunks."""

    def __init__(self, size, mtime, etag, chunks):
        self.size = size
        self.mtime = mtime
        self.etag = etag
        self.chunks = chunks


def _container(driver, bucket):
    from libcloud.storage.base import Container

    return Container(name=bucket, extra={}, driver=driver)


def _s3_like(driver):
    return hasattr(driver, "_get_object_path") and hasattr(driver, "connection")


def _describe_status(status):
    return "HTTP %s" % status


def _open_s3(driver, bucket, key, start, etag):
    headers = {}
    if start:
        headers["Range"] = "bytes=%d-" % start
    if start and etag:
        headers["If-Match"] = '"%s"' % etag
    path = driver._get_object_path(_container(driver, bucket), key)
    response = driver.connection.request(path, method="GET", headers=headers, stream=True, raw=True)
    status = response.status
    if status == 404:
        raise ObjectVanished()
    if status == 412:
        raise FetchError("the object changed while it was read")
    if status not in (200, 206):
        raise FetchError(_describe_status(status))
    hdrs = response.headers
    length = int(hdrs.get("content-length", "-1"))
    if status == 206:
        total = hdrs.get("content-range", "").rpartition("/")[2]
        size = int(total) if total.isdigit() else start + length
    else:
        size = length
    try:
        mtime = to_epoch(hdrs.get("last-modified"))
    except ValueError:
        mtime = None
    new_etag = (hdrs.get("etag") or "").strip('"') or None
    return ObjectStream(size, mtime, new_etag, response.iter_content(CHUNK_SIZE))


def _open_generic(driver, bucket, key, listed):
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
    chunks = driver.download_object_as_stream(obj, chunk_size=CHUNK_SIZE)
    return ObjectStream(None, listed.get("mtime"), listed.get("etag"), chunks)


def _has_dot_segment(key):
    return any(segment in (".", "..") for segment in key.split("/"))


def _translate(exc, key=""):
    from libcloud.common.types import InvalidCredsError, LibcloudError
    from libcloud.storage.types import ObjectDoesNotExistError

    if isinstance(exc, (ObjectVanished, FetchError)):
        return exc
    if isinstance(exc, ObjectDoesNotExistError):
        return ObjectVanished()
    if isinstance(exc, InvalidCredsError):
        if _has_dot_segment(key):
            return FetchError("access denied by the object store (a key with '.' or '..' segments "
                              "can only be read with signature_version=4)")
        return FetchError("access denied by the object store")
    if isinstance(exc, LibcloudError):
        return FetchError(str(exc.value) if getattr(exc, "value", None) else type(exc).__name__)
    return FetchError("%s: %s" % (type(exc).__name__, exc))


def open_object(driver, bucket, key, listed, start=0, etag=None):
    """Open ``key`` for reading from byte ``start``; retries transient failures."""
    last = None
    for attempt in range(RETRIES):
        try:
            if _s3_like(driver):
                return _open_s3(driver, bucket, key, start, etag)
            if start:
                raise FetchError("this provider cannot resume a broken download")
            return _open_generic(driver, bucket, key, listed)
        except Exception as exc:  # noqa: BLE001 - translated, retried, re-raised
            last = _translate(exc, key)
            if isinstance(last, ObjectVanished) or "changed while" in str(last):
                raise last
            time.sleep(min(0.2 * (2**attempt), 2.0))
    raise last


def read_object(driver, bucket, key, listed):
    """Yield ``(ObjectStream, chunk)`` pairs; a broken transfer resumes where it stopped.

    The first item's stream carries the attributes; chunks follow in order.  Raises
    ObjectVanished or FetchError.
    """
    stream = open_object(driver, bucket, key, listed)
    done = 0
    attempts = 0
    while True:
        try:
            for chunk in stream.chunks:
                if chunk:
                    done += len(chunk)
                    yield stream, chunk
            break
        except Exception as exc:  # noqa: BLE001 - a broken connection mid-body
            attempts += 1
            if attempts > RETRIES or not stream.etag or not _s3_like(driver):
                raise _translate(exc, key)
            time.sleep(min(0.2 * (2**attempts), 2.0))
            resumed = open_object(driver, bucket, key, listed, start=done, etag=stream.etag)
            stream.chunks = resumed.chunks
    if stream.size is not None and stream.size >= 0 and done != stream.size:
        raise FetchError("got %d bytes, the object store announced %d" % (done, stream.size))
    if stream.size is None or stream.size < 0:
        stream.size = done
    yield stream, b""
