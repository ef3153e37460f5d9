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

SSE-C (``sse_customer_key_file``): a GET carries the customer key's headers or not, whichever
worked for the last object (an object encrypted with the key is read only with them; Amazon S3
refuses them for an object that is not, radosgw ignores them there); an answer that asks for the
other way is followed once per object.  A resume sends what the first GET of the object sent.
"""

import hashlib
import re
import sys

from ..retry import RESUMED, Transient, is_transient_status
from .driver import is_s3_family

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


class KeyNeeded(FetchError):
    """The object is encrypted with a customer key (SSE-C) and the GET brought none."""

    def __init__(self, configured=False):
        super().__init__(
            "encrypted with a customer key (SSE-C): the object store gives its bytes only to a request "
            "that brings the key" + (" (the one in sse_customer_key_file was refused)" if configured
                                      else "; give it in sse_customer_key_file"))


class KeyNotApplicable(FetchError):
    """The GET brought the customer key, and the object is not encrypted with one."""

    def __init__(self):
        super().__init__("the object store refused the customer key (SSE-C) for this object: it is not "
                         "encrypted with one")


class KeyRefused(FetchError):
    """The object is encrypted with another customer key than the GET brought."""

    def __init__(self):
        super().__init__("encrypted with a customer key (SSE-C) other than the one in sse_customer_key_file: "
                         "the object store refused that key")


class DeniedWithKey(FetchError):
    """403 to a GET that brought the customer key: Amazon S3's answer to a wrong key, and to a
    request it denies anyway (the same GET without the key tells which)."""


class RegionNotFollowed(FetchError):
    """A bucket in another region that the plugin cannot reach (the message says why)."""


class OtherRegion(FetchError):
    """The bucket is served in another region than the request was signed for: ``region``."""

    def __init__(self, region, status, code):
        self.region = region
        super().__init__("the bucket is in region %s (the object store answered %s%s)"
                         % (region, status, " " + code if code else ""))


#: Error codes of an answer from a region the bucket is not in (with ``<Region>`` or the
#: ``x-amz-bucket-region`` header naming its own): Amazon S3 answers 301 PermanentRedirect to a
#: request sent to another region's endpoint, 400 AuthorizationHeaderMalformed to one signed for
#: another region, and, for regions opened since 2019, 400 IllegalLocationConstraintException.
REGION_CODES = ("PermanentRedirect", "TemporaryRedirect", "AuthorizationHeaderMalformed",
                "IllegalLocationConstraintException")


class ObjectStream:
    """An open download: ``size``, ``mtime``, ``etag``, an iterator of byte chunks, ``md5``:
    the MD5 (hex) the bytes must have, where it is known, and ``with_key``: its GET brought the
    SSE-C customer key (so must a resume)."""

    def __init__(self, size, mtime, etag, chunks, md5=None, with_key=False):
        self.size = size
        self.mtime = mtime
        self.etag = etag
        self.chunks = chunks
        self.md5 = md5
        self.with_key = with_key


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


def describe(status, headers, start, key="", body=None, sent_key=False):
    """``(size, mtime, etag, md5_checkable)`` of a GET's answer; ``headers`` with lowercase names.

    Raises ObjectVanished (404), ObjectChanged (412 to a resume, or a whole object where a range
    was asked for), ChangedSinceListed (412 from byte 0), Transient (429/5xx), OtherRegion, or
    FetchError (``body()``, the error document, names the reason where it can: see error_of;
    ``sent_key``: the GET brought the SSE-C customer key).  Used by the prefetchers and by the
    job's direct streams (direct.py) alike.  The size is -1 when the answer does not state it
    (no Content-Length).
    """
    from ..timeutil import to_epoch

    read = []

    def document():  # the error document, read once
        if not read:
            read.append(body() if body is not None else "")
        return read[0]

    if status in (301, 307, 400):
        elsewhere = region_answer(status, headers, document())
        if elsewhere is not None:
            raise elsewhere
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
        raise error_of(status, document(), key, sent_key)
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


def customer_key_of(driver):
    """The options.CustomerKey the driver's GETs may bring (sse_customer_key_file), or None."""
    return getattr(driver, "bareos_customer_key", None)


def get_headers(start, etag, customer_key=None):
    """range_headers, and the SSE-C headers of ``customer_key`` where one is given."""
    headers = range_headers(start, etag)
    if customer_key is not None:
        headers.update(customer_key.headers())
    return headers


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
    return ObjectStream(size, mtime, new_etag, response.iter_content(CHUNK_SIZE), new_etag if checkable else None,
                        with_key=customer_key is not None)


class KeyChoice:
    """Whether a GET brings the SSE-C customer key: ``first`` is what worked last (at first, the
    key: the option says the bucket holds such objects).  For one object, ``switch`` tells the
    way to try after an answer that asks for the other one, once, and the error that stands when
    there is none."""

    def __init__(self, configured):
        self.configured = configured
        self.first = configured

    def start(self, with_key=None):
        """The way for an object's first GET (``with_key``: the one its stream began with)."""
        return ObjectKeyTries(self, self.first if with_key is None else with_key)


class ObjectKeyTries:
    """The SSE-C way of one object's GETs (see KeyChoice)."""

    def __init__(self, choice, with_key):
        self.choice = choice
        self.with_key = bool(with_key and choice.configured)
        self.first_error = None  # what the first way got, once the other one is tried

    def switch(self, error):
        """After ``error``: True when the other way is to be tried (``with_key`` is then it);
        False when ``error`` stands.  Raises KeyRefused when the two answers together say that
        the object is encrypted with another key (Amazon S3 answers a wrong key with 403)."""
        if not self.choice.configured:
            return False
        if self.first_error is None:
            if not (isinstance(error, KeyNeeded) and not self.with_key
                    or isinstance(error, (KeyNotApplicable, DeniedWithKey)) and self.with_key):
                return False
            self.first_error, self.with_key = error, not self.with_key
            return True
        pair = {type(self.first_error), type(error)}
        if pair == {KeyNeeded, DeniedWithKey}:
            raise KeyRefused() from None
        return False

    def worked(self):
        self.choice.first = self.with_key


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
    return ObjectStream(None, listed.get("mtime"), listed.get("etag"), chunks, listed.get("md5"))


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


def _text(document):
    if isinstance(document, (bytes, bytearray)):
        document = bytes(document).decode("utf-8", "replace")
    return document or ""


def region_answer(status, headers, document=""):
    """An answer that says the bucket is in another region: OtherRegion naming it, or a
    FetchError when the answer does not say which; None for any other answer.  ``headers``
    with lowercase names; ``document``: the error document (bytes or text)."""
    if status not in (301, 307, 400):
        return None
    document = _text(document)
    code = _element(document, "Code")
    if status == 400 and code not in REGION_CODES and (document.strip() or "x-amz-bucket-region" not in headers):
        return None  # (a HEAD's answer has no document: only the header can tell)
    region = (headers.get("x-amz-bucket-region") or "").strip() or _element(document, "Region")
    if region:
        return OtherRegion(region, status, code)
    if status == 400 and code != "PermanentRedirect":
        return None  # e.g. a malformed Authorization header: not about the region
    return RegionNotFollowed("the object store answered %s%s: the bucket is served from another endpoint or "
                             "region, and the answer does not say which region; give the bucket's region in "
                             "option region" % (status, " " + code if code else ""))


_NOT_APPLICABLE = re.compile(r"encryption parameters are not applicable", re.IGNORECASE)
_WRONG_KEY = re.compile(r"MD5 hash of the key did not match", re.IGNORECASE)
_KMS = re.compile(r"\bKMS\b", re.IGNORECASE)
_SSE = re.compile(r"server.side.encryption|customer.provided.keys?|customer.key", re.IGNORECASE)


def error_of(status, document, key="", sent_key=False):
    """The FetchError for a GET refused with ``status`` and the S3 error ``document`` (bytes or
    text): objects no plain GET can read are named with their real reason.  ``sent_key``: the
    GET brought the SSE-C customer key."""
    document = _text(document)
    code = _element(document, "Code")
    if code == "InvalidObjectState":
        storage = _element(document, "StorageClass") or "an archive storage class"
        tier = _element(document, "AccessTier")
        return FetchError("archived in storage class %s%s, not readable without a restore request"
                          % (storage, " (%s)" % tier if tier else ""))
    message = _element(document, "Message")
    if status == 400 and sent_key and _NOT_APPLICABLE.search(message):
        return KeyNotApplicable()
    if status == 400 and sent_key and _WRONG_KEY.search(message):
        return KeyRefused()  # radosgw's answer to another key than the object's
    if status == 400 and _KMS.search(message):
        return FetchError("encrypted with AWS KMS (SSE-KMS): the object store gives its bytes only to a "
                          "request signed with signature version 4 (%s)" % message)
    if status == 400 and _SSE.search(message):
        return KeyNeeded(sent_key)
    if status in (401, 403):
        error = access_denied(key)
        return DeniedWithKey(str(error)) if sent_key else error
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
    if stream.size is not None and stream.size >= 0 and done != stream.size:
        raise FetchError("got %d bytes, the object store announced %d" % (done, stream.size))
    if stream.size is None or stream.size < 0:
        stream.size = done
    if digest is not None and digest.hexdigest() != stream.md5:
        what = "the ETag" if stream.md5 == stream.etag else "the MD5 the listing states,"
        raise CorruptRead("the MD5 of the bytes read does not match %s %s" % (what, stream.md5))
    yield stream, b""
