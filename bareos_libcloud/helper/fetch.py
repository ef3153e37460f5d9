"""Reading one object's bytes through libcloud (runs in a fetch helper).

For the S3 family the GET goes through the driver's own signed connection so that the response
headers (size, ETag, Last-Modified) are known before the first byte is handed on, and a broken
transfer resumes with a ranged GET guarded by ``If-Match`` (same ETag, same object).  Other
providers use the generic ``download_object_as_stream`` and report the listed attributes; where
the driver reads from an offset (Azure Blobs, Swift, ...), a broken transfer resumes with
``download_object_range_as_stream``, and since that cannot be made conditional, the object's
ETag is asked for at the end: the copy counts only if it is still the listed one.  Where the
driver cannot, BrokenTransfer lets the fetch helper read the object again from the start, as long
as none of it was handed on.

Integrity: the byte count must equal the announced size, and where the ETag is a plain MD5
(no ``-N`` multipart suffix, no SSE-KMS/SSE-C) the MD5 of the bytes must match it; outside the
S3 family, so must the content MD5 a listing states (Azure block blobs).

SSE-C (``sse_customer_key_file``): a GET carries the customer key's headers or not, whichever
worked for the last object (an object encrypted with the key is read only with them; Amazon S3
refuses them for an object that is not, radosgw ignores them there); an answer that asks for the
other way is followed once per object.  A resume sends what the first GET of the object sent.
"""

import hashlib

# What an answer means (the errors, translate, describe, the SSE-C choice) is in answers.py, shared
# with the job side; the names helper code reads as ``fetch.<name>`` are imported here with it.
from ..answers import (  # noqa: F401 - re-exported: fetch.<name>
    CHUNK_SIZE,
    wrong_md5,
    wrong_size,
    BrokenTransfer,
    ChangedSinceListed,
    CorruptRead,
    DeniedWithKey,
    FetchError,
    KeyChoice,
    KeyNeeded,
    KeyNotApplicable,
    KeyRefused,
    ObjectChanged,
    ObjectVanished,
    OtherRegion,
    RegionNotFollowed,
    _loaded,
    describe,
    error_of,
    get_headers,
    precondition_failed,
    range_headers,
    region_answer,
    translate,
)
from .. import metadata
from ..retry import RESUMED, Transient, is_transient_status
from .driver import is_s3_family


class ObjectStream:
    """An open download: ``size``, ``mtime``, ``etag``, an iterator of byte chunks, ``md5``:
    the MD5 (hex) the bytes must have, where it is known, ``with_key``: its GET brought the
    SSE-C customer key (so must a resume), and ``meta``: the object's metadata (metadata.py)."""

    def __init__(self, size, mtime, etag, chunks, md5=None, with_key=False, meta=()):
        self.meta = meta
        self.tagged = False  # the GET says the object has tags: read_object reads them after the body
        self.size = size
        self.mtime = mtime
        self.etag = etag
        self.chunks = chunks
        self.md5 = md5
        self.with_key = with_key


def _container(driver, bucket):
    from libcloud.storage.base import Container

    return Container(name=bucket, extra={}, driver=driver)


def customer_key_of(driver):
    """The options.CustomerKey the driver's GETs may bring (sse_customer_key_file), or None."""
    return getattr(driver, "bareos_customer_key", None)


def _open_s3(driver, bucket, key, start, etag, with_key):
    path = driver._get_object_path(_container(driver, bucket), key)
    customer_key = customer_key_of(driver) if with_key else None
    try:
        response = driver.connection.request(path, method="GET", headers=get_headers(start, etag, customer_key),
                                             stream=True, raw=True)
    except Exception as exc:  # noqa: BLE001 - libcloud raises for some statuses (403, 412)
        error = translate(exc, key)
        if isinstance(error, ObjectChanged) and etag:
            error = precondition_failed(start)
        elif customer_key is not None and isinstance(exc, _loaded("libcloud.common.types", "InvalidCredsError")):
            error = DeniedWithKey(str(error))  # 401/403
        raise error from None
    size, mtime, new_etag, checkable = describe(response.status, response.headers, start, key,
                                                lambda: response.body, sent_key=customer_key is not None)
    stream = ObjectStream(size, mtime, new_etag, response.iter_content(CHUNK_SIZE), new_etag if checkable else None,
                          with_key=customer_key is not None, meta=metadata.from_headers(response.headers))
    stream.tagged = start == 0 and metadata.tag_count(response.headers) > 0
    return stream


def object_tags(driver, bucket, key):
    """An S3 object's tags, [(key, value)] (GetObjectTagging: the GET says only how many)."""
    from xml.etree import ElementTree

    path = driver._get_object_path(_container(driver, bucket), key)
    try:
        response = driver.connection.request(path, params={"tagging": ""}, method="GET")
    except Exception as exc:  # noqa: BLE001 - libcloud raises for some statuses
        raise FetchError("its tags could not be read: %s" % translate(exc, key)) from None
    body = response.body if isinstance(response.body, (bytes, str)) else response.parse_body()
    try:
        root = ElementTree.fromstring(body) if isinstance(body, (bytes, str)) else body
    except ElementTree.ParseError:
        raise FetchError("its tags could not be read: the answer is not XML") from None
    tags = []
    for tag in root.iter():
        if tag.tag.rsplit("}", 1)[-1] == "Tag":
            fields = {child.tag.rsplit("}", 1)[-1]: child.text or "" for child in tag}
            tags.append((fields.get("Key", ""), fields.get("Value", "")))
    return tags


def key_choice(driver):
    """The driver's KeyChoice (one per driver, so per helper process)."""
    choice = getattr(driver, "bareos_key_choice", None)
    if choice is None:
        choice = KeyChoice(customer_key_of(driver) is not None)
        driver.bareos_key_choice = choice
    return choice


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
    if start and not (listed.get("etag") and reads_ranges(driver)):
        raise FetchError("this provider cannot resume a broken download")
    if is_swift(driver):
        chunks = _swift_chunks(driver, bucket, key, start)
    elif start:
        chunks = driver.download_object_range_as_stream(obj, start_bytes=start, chunk_size=CHUNK_SIZE)
    else:
        chunks = driver.download_object_as_stream(obj, chunk_size=CHUNK_SIZE)
    return ObjectStream(None, listed.get("mtime"), listed.get("etag"), chunks, listed.get("md5"),
                        meta=listed.get("meta") or ())


def is_swift(driver):
    """OpenStack Swift and the other drivers of libcloud's CloudFiles family."""
    from libcloud.storage.drivers.cloudfiles import CloudFilesStorageDriver

    return isinstance(driver, CloudFilesStorageDriver)


def _swift_chunks(driver, bucket, key, start):
    """The GET libcloud's Swift driver sends, with the key quoted and the body streamed.

    libcloud 3.9 puts the key into the path as it is (a key holding '#', '?' or a '%' escape
    is answered 404, which would make the object look deleted) and reads the whole body before
    it hands on the first chunk (a large object held whole in memory).
    """
    from libcloud.common.base import Connection

    path = "/%s/%s" % (driver._encode_container_name(bucket), driver._encode_object_name(key))
    headers = {"Range": "bytes=%d-" % start} if start else {}
    # Connection.request itself: the Swift connection's own request() takes no ``stream``;
    # what it adds (format=json, the auth headers and path through libcloud's hooks) is kept.
    response = Connection.request(driver.connection, path, params={"format": "json"}, method="GET",
                                  headers=headers, raw=True, stream=True)
    status = response.status
    if status == 404:
        raise ObjectVanished()
    if is_transient_status(status):
        raise Transient("HTTP %s" % status)
    if status == 416 and start:
        raise FetchError("the object ends before byte %d, fewer bytes than its size" % start)
    if status != (206 if start else 200):
        raise FetchError("HTTP %s" % status)
    return response.iter_content(CHUNK_SIZE)


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


def open_object(driver, bucket, key, listed, retry, start=0, etag=None, with_key=None):
    """Open ``key`` for reading from byte ``start``, retrying transient failures.

    ``with_key``: whether the GET brings the SSE-C key (a resume: as its first GET did);
    None: as worked last (see KeyChoice).
    """
    attempts = retry.start(key)
    s3 = is_s3_family(driver)
    tries = key_choice(driver).start(with_key) if s3 else None
    while True:
        try:
            if s3:
                stream = _open_s3(driver, bucket, key, start, etag, tries.with_key)
                tries.worked()
                return stream
            return _open_generic(driver, bucket, key, listed, start)
        except Exception as exc:  # noqa: BLE001 - translated, retried, re-raised
            error = translate(exc, key)
            if tries is not None and tries.switch(error):
                continue
            if isinstance(error, ObjectVanished) and not start:
                error = confirm_vanished(driver, bucket, key)
            if not isinstance(error, Transient):
                raise error from None
            if not attempts.retry(error):
                raise FetchError("%s (gave up after %d attempts)" % (error, attempts.made)) from None


def confirm_vanished(driver, bucket, key):
    """A 404 to a GET: ObjectVanished, unless a HEAD still finds the object (a key the GET path
    cannot name), which must not pass for a deleted object: then a FetchError."""
    try:
        driver.get_object(bucket, key)
    except Exception:  # noqa: BLE001 - gone, or the HEAD failed too: the 404 stands
        return ObjectVanished()
    return FetchError("its GET is answered 404 although a HEAD finds it (a key this provider's "
                      "driver cannot read)")


def read_object(driver, bucket, key, listed, retry, start=0, etag=None):
    """Yield ``(ObjectStream, chunk)`` pairs; the first and the last have an empty chunk (the
    last one's stream has the object's tags in its ``meta``).

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
            resumed = open_object(driver, bucket, key, listed, retry, start=done, etag=stream.etag,
                                  with_key=stream.with_key)
            stream.chunks = resumed.chunks
            confirm = confirm or (done > 0 and not s3)
    if confirm:
        try:
            _confirm_unchanged(driver, bucket, key, stream.etag, done, retry)
        except ObjectChanged:
            if pinned:
                raise ChangedSinceListed() from None
            raise
    problem = wrong_size(done, stream.size)
    if problem:
        raise FetchError(problem)
    if stream.size is None or stream.size < 0:
        stream.size = done
    if digest is not None:
        problem = wrong_md5(digest.hexdigest(), stream.md5,
                            "the ETag" if stream.md5 == stream.etag else "the MD5 the listing states,")
        if problem:
            raise CorruptRead(problem)
    if stream.tagged:  # after the body: the driver's connection is free again
        stream.meta = metadata.with_tags(stream.meta, object_tags(driver, bucket, key))
    yield stream, b""
