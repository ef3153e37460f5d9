"""What an object store's answer to a GET means: the errors of a read, and the rules that turn
an answer's status, headers and error document into them.

Shared by both sides (standard library only): the helpers read every GET's answer by these rules
(helper/fetch.py, helper/curlfetch.py, helper/driver.py), and so does the job thread for its
direct streams (job/direct.py); the prefetch pool reports ChangedSinceListed (job/prefetch.py).
Nothing here imports libcloud, also not on an error path: translate() takes libcloud's error
classes from the modules already loaded (``sys.modules``), since a class of a module that is not
loaded cannot have been raised.
"""

import re
import sys

from .retry import Transient, is_transient_status

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


def wrong_size(got, announced):
    """The reason a copy of ``got`` bytes is not the object the store announced (``announced``
    bytes; None or negative: not stated), or None.  Every path checks with this: the fetch
    helpers' thread and curl paths, the job's direct streams."""
    if announced is not None and announced >= 0 and got != announced:
        return "got %d bytes, the object store announced %d" % (got, announced)
    return None


def wrong_md5(hexdigest, expected, what="the ETag"):
    """The reason bytes whose MD5 is ``hexdigest`` are not the ones whose MD5 is ``expected`` (a
    plain-MD5 ETag, or ``what`` else states it), or None; checked wherever the MD5 is known."""
    if expected and hexdigest != expected:
        return "the MD5 of the bytes read does not match %s %s" % (what, expected)
    return None


def describe(status, headers, start, key="", body=None, sent_key=False):
    """``(size, mtime, etag, md5_checkable)`` of a GET's answer; ``headers`` with lowercase names.

    Raises ObjectVanished (404), ObjectChanged (412 to a resume, or a whole object where a range
    was asked for), ChangedSinceListed (412 from byte 0), Transient (429/5xx), OtherRegion, or
    FetchError (``body()``, the error document, names the reason where it can: see error_of;
    ``sent_key``: the GET brought the SSE-C customer key).  Used by the fetch helpers and by the
    job's direct streams (direct.py) alike.  The size is -1 when the answer does not state it
    (no Content-Length).
    """
    from .timeutil import to_epoch

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


def get_headers(start, etag, customer_key=None):
    """range_headers, and the SSE-C headers of ``customer_key`` where one is given."""
    headers = range_headers(start, etag)
    if customer_key is not None:
        headers.update(customer_key.headers())
    return headers


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
