"""Which buckets and objects a job covers (runs in the lister process).

Produces the lister's messages (see protocol.py) in listing order, streaming: memory does not
grow with the number of objects in a bucket.

For the S3 family the pages are requested through libcloud's signed connection with
``encoding-type=url``: without it a key holding a control character makes the listing XML
unparsable (radosgw sends it raw), and libcloud's own iterator cannot resume after a failed
page.  Here a failed page is retried from its marker; the listing never restarts.

What a line selects beyond its prefix (selection.py: patterns, sizes, dates, storage classes)
and what becomes of archived objects (archive.py) is decided here, per listed object, by
:class:`Scope`: the job receives only the objects it is to save or declare.
"""

import base64
import hashlib
import re
from urllib.parse import unquote_plus

from .. import metadata, naming
from ..archive import RestoreState, name_hash, pack
from ..selection import AZURE_ARCHIVED, S3_ARCHIVED, Selection
from ..shards import DELIMITER, in_shard, prefix_shard, shard_of
from ..timeutil import to_epoch
from .driver import is_s3_family

BATCH = 1000
#: Archived objects named per bucket in the lister's tally (the job names NAMES_SHOWN in all).
NAMES_SHOWN = 20
_HEX_MD5 = re.compile(r"^[0-9a-f]{32}$")


def _error_text(exc):
    value = getattr(exc, "value", None)
    text = value if isinstance(value, str) and value else str(exc)
    return "%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__


def _is_creds_error(exc):
    from libcloud.common.types import InvalidCredsError

    return isinstance(exc, InvalidCredsError)


def _is_missing_bucket(exc):
    from libcloud.storage.types import ContainerDoesNotExistError

    return isinstance(exc, ContainerDoesNotExistError) or "NoSuchBucket" in str(exc)


def _where(config):
    kw = config["driver_kwargs"]
    host = kw.get("host")
    return "%s:%s" % (host, kw["port"]) if host and "port" in kw else (host or config["provider"])


_NETWORK_CAUSES = (
    ("Connection refused", "connection refused"),
    ("Name or service not known", "unknown host name"),
    ("Temporary failure in name resolution", "host name lookup failed"),
    ("timed out", "timed out"),
    ("CERTIFICATE_VERIFY_FAILED", "TLS certificate verification failed"),
    ("SSLError", "TLS handshake failed"),
    ("Connection reset", "connection reset"),
)


def _startup_failure(exc, config, drv):
    if _is_creds_error(exc):
        payer = not is_s3_family(drv) or getattr(config["driver_kwargs"], "request_payer", False)
        hint = "" if payer else (
            "; a requester-pays bucket of another account needs request_payer=yes")
        return "the object store at %s refused the credentials (check key and secret%s)" % (_where(config), hint)
    text = "%s: %s" % (type(exc).__name__, exc)
    for needle, cause in _NETWORK_CAUSES:
        if needle in text:
            return "cannot connect to the object store at %s: %s" % (_where(config), cause)
    return "cannot list buckets at %s: %s" % (_where(config), _error_text(exc))


def _retrying(call, what, retry):
    """``call()``, retried while it fails transiently."""
    attempts = retry.start(what)
    while True:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - classified, retried or re-raised
            if not _is_transient(exc) or not attempts.retry(_error_text(exc)):
                raise


def select_buckets(drv, config, retry):
    """``(containers, notes)`` for buckets_include/buckets_exclude; ``notes`` are lister messages:
    a bucket named in buckets_include that does not exist is an error (nothing of it is saved),
    one named in buckets_exclude a warning."""
    include = config.get("buckets_include")
    exclude = set(config.get("buckets_exclude") or ())
    warnings = []
    if include:
        chosen = []
        for name in include:
            if name in exclude:
                continue
            try:
                chosen.append(_retrying(lambda name=name: drv.get_container(name), "bucket %s" % name, retry))
            except Exception as exc:  # noqa: BLE001 - classified below
                if _is_missing_bucket(exc):
                    warnings.append(("error", "bucket %r named in buckets_include does not exist; "
                                              "nothing of it is saved" % name))
                else:
                    raise
        return chosen, warnings
    containers = _retrying(lambda: list(drv.iterate_containers()), "the list of buckets", retry)
    names = {c.name for c in containers}
    for name in sorted(exclude - names):
        warnings.append(("warning", "bucket %r named in buckets_exclude does not exist" % name))
    return [c for c in containers if c.name not in exclude], warnings


def _record(obj):
    """``(key, size, mtime, etag, md5, meta, storage class)`` of an object of libcloud's generic
    listing; ``meta``: the metadata the listing states (metadata.from_listing: a GET through
    libcloud's generic download shows no headers); the class is Azure's access tier (upper-cased)
    where the listing states it, else None."""
    extra = obj.extra or {}
    try:
        mtime = to_epoch(extra.get("last_modified"))
    except ValueError:
        mtime = None
    tier = extra.get("access_tier")
    return (obj.name, int(obj.size or 0), mtime, obj.hash or None, _content_md5(extra),
            metadata.from_listing(extra, obj.meta_data), tier.upper() if isinstance(tier, str) and tier else None)


def _with_access_tier(drv):
    """Have an Azure driver's listing keep each blob's access tier (``extra["access_tier"]``):
    libcloud reads the listing's ``<AccessTier>`` but keeps it nowhere.  True where it does."""
    try:
        from libcloud.storage.drivers.azure_blobs import AzureBlobsStorageDriver
    except ImportError:  # pragma: no cover - part of every libcloud
        return False
    if not isinstance(drv, AzureBlobsStorageDriver):
        return False
    to_object = drv._xml_to_object

    def with_tier(container, blob):
        obj = to_object(container, blob)
        props = blob.find("Properties")
        if props is not None:
            obj.extra["access_tier"] = props.findtext("AccessTier")
            for name in ("Cache-Control", "Content-Disposition"):  # libcloud keeps neither
                obj.extra[name.lower().replace("-", "_")] = props.findtext(name)
        return obj

    drv._xml_to_object = with_tier
    return True


def _content_md5(extra):
    """The MD5 of the content that a generic listing states (Azure block blobs), or None.

    Azure computes it for a blob stored in one piece and keeps what the uploader gave for one
    assembled from blocks (azcopy and the SDKs give it); other blob types may hold none.
    """
    md5 = extra.get("md5_hash")
    if extra.get("blob_type") == "BlockBlob" and isinstance(md5, str) and _HEX_MD5.match(md5):
        return md5
    return None


def _s3_page(drv, path, params, what, retry):
    """One ListObjects page, its XML as text (not parsed yet), retried from the same marker."""
    from libcloud.common.types import LibcloudError

    attempts = retry.start(what)
    while True:
        try:
            response = drv.connection.request(path, params=params, raw=True, stream=True)
            text = b"".join(response.iter_content(1 << 20)).decode("utf-8")
            if response.status != 200:
                raise LibcloudError("unexpected status %s: %s" % (response.status, text[:300]), driver=drv)
            return text
        except Exception as exc:  # noqa: BLE001 - retried from the same marker
            if not _is_transient(exc) or not attempts.retry(_error_text(exc)):
                raise


def _parse(page):
    import xml.etree.ElementTree as ET

    from libcloud.common.types import MalformedResponseError

    try:
        return ET.fromstring(page)
    except ET.ParseError as exc:
        raise MalformedResponseError("the listing is not valid XML: %s" % exc, body=page[:300]) from None


def _peek_next_marker(page):
    """The next page's marker, read from the raw text of a truncated, URL-encoded page, or None.

    With ``encoding-type=url`` a key holds no XML markup, so the last ``<Key>`` is its text;
    anything less plain is left to the parsed page.
    """
    if "<EncodingType>url</EncodingType>" not in page or "<IsTruncated>true</IsTruncated>" not in page:
        return None
    start = page.rfind("<Key>")
    end = page.find("</Key>", start)
    if start < 0 or end < 0:
        return None
    raw = page[start + 5 : end]
    if "<" in raw or "&" in raw:
        return None
    return _url_decode(raw)


def _url_decode(name, errors="strict"):
    """A key of an ``encoding-type=url`` listing (most keys have nothing to decode)."""
    if "%" in name or "+" in name:
        return unquote_plus(name, errors=errors)
    return name


def _namespace(body):
    """``{namespace}`` of a parsed page's root element ("" when the server sends none)."""
    return body.tag[: body.tag.index("}") + 1] if body.tag.startswith("{") else ""


def _page_entries(body, decode):
    """The ``(key, size, mtime, etag, None, storage class)`` records of one parsed ListObjects
    page (for the S3 family the MD5 is the ETag's, where it is one: fetch.describe; the class is
    None where the page states none, which S3 means as STANDARD).

    Read here rather than through libcloud's ``_to_objs``: that builds an Object with owner
    metadata per key through six XPath searches, which was two thirds of the lister's CPU.
    """
    ns = _namespace(body)
    key_tag, size_tag, date_tag, etag_tag = ns + "Key", ns + "Size", ns + "LastModified", ns + "ETag"
    class_tag = ns + "StorageClass"
    entries = []
    for element in body.iterfind(ns + "Contents"):
        try:
            mtime = to_epoch(element.findtext(date_tag))
        except ValueError:
            mtime = None
        etag = (element.findtext(etag_tag) or "").replace('"', "") or None
        size = int(element.findtext(size_tag) or 0)
        entries.append((decode(element.findtext(key_tag), errors="strict"), size, mtime, etag, None, None,
                        element.findtext(class_tag) or None))
    return entries


def _page_prefixes(body, decode):
    """The ``<CommonPrefixes>`` of a page listed with a delimiter."""
    ns = _namespace(body)
    return [decode(element.findtext(ns + "Prefix"), errors="strict")
            for element in body.iterfind(ns + "CommonPrefixes")]


class ListingIncomplete(Exception):
    """A listing page said more follows but gave no way to ask for it (no entry, no NextMarker)."""


def _next_marker(body, decode):
    """The ``<NextMarker>`` of a parsed page (URL-decoded where the page is), or None."""
    marker = body.findtext(_namespace(body) + "NextMarker")
    return decode(marker, errors="strict") if marker else None


def _s3_pages(drv, container, prefix, retry, delimiter=None):
    """Yield the records of each ListObjects page, with exact key names; with a ``delimiter``,
    ``(records, common prefixes)`` of each page.

    The next page is requested (on a helper thread of this process) as soon as the last key
    of the current one is known, so the server works while this page is turned into entries.
    With a delimiter it is requested when the caller asks for it: the caller lists prefixes of
    the page meanwhile, through the same connection (shard_by=prefix).

    A truncated page goes on from its ``<NextMarker>``, else from its last key: a page may hold
    no ``<Contents>`` and still a NextMarker (S3 does that where a delimiter folds keys into
    CommonPrefixes).  A truncated page with neither says the listing goes on without saying
    where: it is asked for again from the same marker (the answer may be a passing fault), and
    if it stays so the listing ends with ListingIncomplete, never as if the bucket ended there.
    """
    from concurrent.futures import ThreadPoolExecutor

    def text(body, tag):
        return (body.findtext(_namespace(body) + tag) or "").lower()

    path = drv._get_container_path(container)
    params = {"encoding-type": "url"}
    if prefix:
        params["prefix"] = prefix
    if delimiter:
        params["delimiter"] = delimiter

    def request(marker):
        page_params = dict(params)
        what = "listing of %s" % container.name
        if marker is not None:
            page_params["marker"] = marker
            what += " after %r" % marker
        return ahead.submit(_s3_page, drv, path, page_params, what, retry)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bareos-libcloud-page") as ahead:
        marker = None  # the marker of the page in hand (None: the first page)
        stuck = None  # the attempts at a page that gave no way on
        later = None  # with a delimiter: the marker of the next page, requested after the yield
        pending = request(marker)
        while pending is not None:
            page = pending.result()
            pending = None
            following = None if delimiter else _peek_next_marker(page)
            if following is not None and following != marker:
                pending = request(following)  # before this page is parsed: the server works meanwhile
            body = _parse(page)
            decode = _url_decode if text(body, "EncodingType") == "url" else (lambda name, errors=None: name)
            entries = _page_entries(body, decode)
            prefixes = _page_prefixes(body, decode) if delimiter else []
            if pending is None and text(body, "IsTruncated") == "true":
                last = max(([entries[-1][0]] if entries else []) + prefixes[-1:], default=None)
                following = _next_marker(body, decode) or last
                if following is None or following == marker:
                    where = "after %r" % marker if marker is not None else "at its start"
                    problem = "a page %s was truncated but named no next key (no entries, no NextMarker)" % where
                    stuck = stuck or retry.start("listing of %s %s" % (container.name, where))
                    if not stuck.retry(problem):
                        raise ListingIncomplete("the listing did not finish: " + problem)
                    following = marker
                else:
                    stuck = None
                if not delimiter:
                    pending = request(following)
                else:
                    later = following
            if pending is not None:
                marker = following
            if not delimiter:
                if entries:
                    yield entries
                continue
            if entries or prefixes:
                yield entries, prefixes
            if later is not None:
                marker, pending, later = later, request(later), None


def _is_transient(exc):
    from .fetch import translate
    from ..retry import Transient

    if _is_creds_error(exc) or _is_missing_bucket(exc):
        return False
    return isinstance(translate(exc), Transient)


def _records(drv, container, config, retry):
    """The records ``(key, size, mtime, etag, md5, storage class)`` of the line's prefix and
    shard in ``container``, in listing order (by prefix for ``shard_by=prefix``)."""
    prefix, shard = config.get("prefix"), config.get("shard")
    if not is_s3_family(drv):
        _retry_each_request(drv, retry, "the listing of %s" % container.name)
        records = (_record(obj) for obj in drv.iterate_container_objects(container, prefix=prefix or None))
    elif shard and config.get("shard_by") == "prefix":
        yield from _prefix_shard_records(drv, container, prefix or "", retry, shard)
        return
    else:
        records = (record for page in _s3_pages(drv, container, prefix, retry) for record in page)
    if not shard:
        yield from records
        return
    name, (k, n) = container.name, shard
    for record in records:
        if shard_of(name, record[0], n) == k:
            yield record


def _prefix_shard_records(drv, container, prefix, retry, shard):
    """``shard_by=prefix``: the top level is listed with a delimiter; its own keys belong to shard
    1, each common prefix to the shard of its hash (shards.py), and only this shard's prefixes are
    listed in full.  So the shards together list the bucket about once, not once each."""
    k, n = shard
    for records, prefixes in _s3_pages(drv, container, prefix, retry, delimiter=DELIMITER):
        if k == 1:
            yield from records
        for common in prefixes:
            if prefix_shard(container.name, common, n) == k:
                for page in _s3_pages(drv, container, common, retry):
                    yield from page


def _retry_each_request(drv, retry, what):
    """Have libcloud retry every request of ``drv`` that fails transiently, by ``retry``.

    libcloud's generic listing iterator cannot go on after a failed page, so its requests are
    retried where they are made: through libcloud's own hook for that (``Connection.retryCls``,
    used when ``RETRY_FAILED_HTTP_REQUESTS`` is set; this runs in the lister, a process of ours,
    whose other requests are idempotent too).
    """
    import libcloud.common.base as base

    class RetryByPolicy:
        def __init__(self, retry_delay=None, timeout=None, backoff=None):
            pass

        def __call__(self, request):
            return lambda *args, **kwargs: _retrying(lambda: request(*args, **kwargs), what, retry)

    base.RETRY_FAILED_HTTP_REQUESTS = True
    drv.connection.retryCls = RetryByPolicy


class Unsupported(Exception):
    """An option this provider's listing cannot honour (the job fails at its start)."""


def check_support(drv, config):
    """Refuse, before anything is listed, the options this driver's listing cannot honour (and
    have an Azure listing keep each blob's access tier: its storage class, Archive unreadable)."""
    if is_s3_family(drv):
        return
    tiers = _with_access_tier(drv)
    provider = config["provider"]
    if config.get("shard") and config.get("shard_by") == "prefix":
        raise Unsupported("shard_by=prefix needs a listing by delimiter, which the plugin makes for the S3 "
                          "family only, not for %s: use shard_by=hash" % provider)
    if config.get("archived") == "request":
        raise Unsupported("archived=request sends S3 restore requests (POST ?restore); %s has none (an Azure "
                          "blob leaves the Archive tier only by a change of its tier, which the plugin does "
                          "not make): use archived=skip" % provider)
    selection = config.get("selection") or {}
    names = [name for name in ("storage_classes", "exclude_storage_classes") if selection.get(name)]
    if names and not tiers:
        raise Unsupported("%s needs the storage class of each object, which the listing of %s does not "
                          "state (only the S3 family's and Azure's do)" % (names[0], provider))


class Scope:
    """What one line saves of one bucket's listing, in the lister: the selection is applied, and
    archived objects are counted, named, and (``archived=request``) asked to be restored.

    ``take(record)`` answers ENTRY (an object for the job), RESTORED (a formerly archived object
    whose restore request this job's state holds: the job saves it whatever its times say), or
    None (not for the job: left out, archived, or unchanged and archived)."""

    ENTRY, RESTORED = "entry", "restored"

    def __init__(self, drv, config, retry, bucket, selection, state, objects=None):
        """``objects``: an :class:`ObjectRequests` for the restore requests and HEADs."""
        self.drv, self.config, self.retry, self.bucket = drv, config, retry, bucket
        self.objects = objects
        self.selection = selection
        self.archived = S3_ARCHIVED if is_s3_family(drv) else AZURE_ARCHIVED
        self.since = config.get("since") or 0
        self.accurate = config.get("accurate", False)
        self.request = config.get("archived") == "request" and state is not None and not config.get("estimate")
        self.state = state
        self.tier = config.get("restore_tier") or "Standard"
        self.days = config.get("restore_days") or 7
        self.waiting = state.waiting.pop(bucket, {}) if state is not None else {}  # key -> entry
        self.counts = dict.fromkeys(("left_out", "unchanged", "archived", "requested", "pending",
                                     "restore_failed", "vanished"), 0)
        self.classes = {}
        self.names, self.errors, self.kept, self.new_requests = [], [], [], []
        self.seen = 0

    def take(self, record):
        self.seen += 1
        key, size, mtime, _, _, _, storage_class = record
        if self.selection.active and not self.selection.selected(key, size, mtime, storage_class):
            self.counts["left_out"] += 1
            return None
        waiting = self.waiting.pop(key, None) if self.waiting else None
        if storage_class not in self.archived:
            return self.RESTORED if waiting is not None else self.ENTRY
        return self._archived(key, mtime, storage_class, waiting)

    def _archived(self, key, mtime, storage_class, waiting):
        changed = not self.since or mtime is None or mtime >= self.since
        if self.request and (waiting is not None or changed):
            outcome = self._restore_state(key) if waiting is not None else "none"
            if outcome == "none":
                outcome = self._ask_restore(key, waiting is not None)
            if outcome == "readable":
                return self.RESTORED if waiting is not None else self.ENTRY
            if outcome == "vanished":
                self.counts["vanished"] += 1
                return None
            self.counts[outcome] += 1
            state = {"requested": "restore requested", "pending": "restore pending"}.get(outcome, outcome)
        elif changed:
            self.counts["archived"] += 1
            state = "archived"
        else:
            self.counts["unchanged"] += 1
            self._keep(key)
            return None
        self.classes[storage_class] = self.classes.get(storage_class, 0) + 1
        if len(self.names) < NAMES_SHOWN:
            self.names.append((key, storage_class, state))
        self._keep(key)
        return None

    def _keep(self, key):
        if self.accurate:
            try:
                self.kept.append(name_hash(naming.object_fname(self.bucket, key)))
            except naming.BadName:
                pass  # never declared nor cataloged under any name

    # -- S3 restore requests ---------------------------------------------------------------
    def _request(self, key, method, what, **kwargs):
        """``(status, headers, body)`` of a request about one object, retried while it fails
        transiently; a 403 is an answer here, not an exception."""
        from libcloud.common.types import InvalidCredsError

        from .fetch import _container

        drv = self.objects.driver()
        path = drv._get_object_path(_container(drv, self.bucket), key)

        def call():
            try:
                response = drv.connection.request(path, method=method, raw=True, **kwargs)
            except InvalidCredsError as exc:
                return 403, {}, str(getattr(exc, "value", "") or "")
            body = b"" if method == "HEAD" else b"".join(response.iter_content(1 << 16))
            return response.status, response.headers, body.decode("utf-8", "replace")

        return _retrying(call, "%s of %r in %s" % (what, key, self.bucket), self.retry)

    def _restore_state(self, key):
        """``readable``, ``pending``, ``none`` (no copy: never made, or expired) or ``vanished``,
        from the object's HEAD (``x-amz-restore``)."""
        try:
            status, headers, _ = self._request(key, "HEAD", "the restore state")
        except Exception as exc:  # noqa: BLE001 - counted, named, the job goes on
            return self._restore_failed(key, _error_text(exc))
        if status == 404:
            return "vanished"
        if status != 200:
            return self._restore_failed(key, "HEAD answered HTTP %s" % status)
        restore = (headers.get("x-amz-restore") or "").replace(" ", "").lower()
        if 'ongoing-request="true"' in restore:
            return "pending"
        if 'ongoing-request="false"' in restore:
            return "readable"
        return "none"

    def _ask_restore(self, key, recorded):
        """Send ``POST ?restore``; ``requested``, ``pending``, ``readable``, ``vanished`` or
        ``restore_failed``.  A request sent, or found in progress, is recorded in the state."""
        body = ('<RestoreRequest xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Days>%d</Days>'
                "<GlacierJobParameters><Tier>%s</Tier></GlacierJobParameters></RestoreRequest>"
                % (self.days, self.tier)).encode()
        headers = {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),
                   "Content-Type": "application/xml"}
        try:
            status, _, answer = self._request(key, "POST", "the restore request", params={"restore": ""},
                                              data=body, headers=headers)
        except Exception as exc:  # noqa: BLE001 - counted, named, the job goes on
            return self._restore_failed(key, _error_text(exc))
        code = _xml_text(answer, "Code")
        if status == 200 or (status == 403 and code == "InvalidObjectState"):
            return "readable"  # a copy is there already, or it left the archive since the listing
        if status == 404:
            return "vanished"
        if status in (202, 409):
            if status == 202 or not recorded:
                self.new_requests.append(naming.object_fname(self.bucket, key))
            return "requested" if status == 202 else "pending"
        if status == 403:
            return self._restore_failed(key, "access denied (the credentials may not send restore requests: "
                                             "s3:RestoreObject)")
        return self._restore_failed(key, "HTTP %s%s" % (status, ": " + code if code else ""))

    def _restore_failed(self, key, reason):
        if len(self.errors) < NAMES_SHOWN:
            self.errors.append((key, reason))
        return "restore_failed"

    def flush(self):
        """Record the restore requests sent since the last flush (one fsync for all)."""
        if self.new_requests:
            self.state.requested(self.new_requests, self.tier, self.days)
            self.new_requests = []

    def tally(self, complete):
        """The bucket's tally for the job (see protocol.py); ``complete``: the listing finished,
        so recorded requests of this line's keys that were not listed are gone."""
        self.flush()
        gone = []
        if complete and self.waiting:
            config = self.config
            prefix, shard, by = config.get("prefix") or "", config.get("shard"), config.get("shard_by")
            for key, entry in self.waiting.items():
                if key.startswith(prefix) and in_shard(self.bucket, key, shard, by, prefix) \
                        and self.selection.key_selected(key):
                    gone.append(entry["fname"])
        return dict(self.counts, classes=self.classes, names=self.names, errors=self.errors,
                    kept=pack(self.kept), gone=gone)


class ObjectRequests:
    """A driver of its own for the lister's requests about single objects (restore requests and
    HEADs), made when first needed: the listing's connection is busy with the next page, which
    is read ahead on another thread, and a connection serves one request at a time."""

    def __init__(self, config):
        self.config = config
        self.drv = None

    def driver(self):
        if self.drv is None:
            from .driver import make_driver

            config = self.config
            self.drv = make_driver(config["provider"], config["driver_kwargs"], config["timeout"],
                                   config.get("ca_file"))
        return self.drv


def _xml_text(document, tag):
    match = re.search(r"<%s>([^<]*)</%s>" % (tag, tag), document or "")
    return match.group(1).strip() if match else ""


class Waiting(RestoreState):
    """The restore state as the lister reads it: the recorded requests by bucket and key."""

    def load_waiting(self):
        self.load()
        self.waiting = {}
        for fname, entry in self.pending.items():
            try:
                bucket, key = naming.parse_fname(fname)
            except naming.BadName:
                continue
            self.waiting.setdefault(bucket, {})[key] = entry
        return self


def _bucket_messages(drv, container, config, retry, selection, state, objects=None):
    """The lister's messages for one bucket: its objects in batches ("entries", "restored"),
    then its "tally".  When the listing fails after some objects, those come first, with the
    tally of what was listed, before the failure is raised."""
    scope = Scope(drv, config, retry, container.name, selection, state, objects)
    name, batch, restored = container.name, [], []
    take, ENTRY, RESTORED = scope.take, Scope.ENTRY, Scope.RESTORED

    def flushed():
        scope.flush()
        out = []
        if batch:
            out.append(("entries", name, list(batch)))
            batch.clear()
        if restored:
            out.append(("restored", name, list(restored)))
            restored.clear()
        return out

    try:
        for record in _records(drv, container, config, retry):
            kind = take(record)
            if kind is ENTRY:
                batch.append(record[:6])
            elif kind is RESTORED:
                restored.append(record[:6])
            else:
                continue
            if len(batch) + len(restored) >= BATCH:
                yield from flushed()
    except Exception:
        if scope.seen:
            yield from flushed()
            yield ("tally", name, scope.tally(complete=False))
        raise
    yield from flushed()
    yield ("tally", name, scope.tally(complete=True))


def _restore_state(config):
    where = config.get("restore_state")
    if not where or config.get("archived") != "request" or config.get("estimate"):
        return None
    return Waiting.at(*where).load_waiting()


def list_all(drv, config, retry):
    """Yield the lister's messages for one job."""
    try:
        check_support(drv, config)
        selection = Selection(config.get("selection"), config.get("now") or 0)
        state = _restore_state(config)
        objects = ObjectRequests(config)
    except Unsupported as exc:
        yield ("fatal", str(exc))
        return
    try:
        containers, warnings = select_buckets(drv, config, retry)
        # Force the first listing request now, so refused credentials fail the job at start.
        first = first_failure = iterator = None
        while containers and iterator is None:
            iterator = _bucket_messages(drv, containers[0], config, retry, selection, state, objects)
            try:
                first = next(iterator, None)
            except ListingIncomplete as exc:  # the store answered: a failure of this bucket only
                first, first_failure = None, exc
            except Exception as exc:  # noqa: BLE001 - classified below
                if not _is_missing_bucket(exc):
                    raise
                iterator = None
                warnings.append(("error", "bucket %r does not exist; nothing of it is saved"
                                 % containers.pop(0).name))
    except Exception as exc:  # noqa: BLE001 - reported as the job's fatal error
        yield ("fatal", _startup_failure(exc, config, drv))
        return
    yield from warnings
    yield ("ready", [c.name for c in containers])
    for index, container in enumerate(containers):
        try:
            if index == 0:
                if first is not None:
                    yield first
                if first_failure is not None:
                    raise first_failure
                messages = iterator
            else:
                messages = _bucket_messages(drv, container, config, retry, selection, state, objects)
            yield from messages
        except Exception as exc:  # noqa: BLE001 - the job names the bucket and carries on
            if _is_creds_error(exc):
                yield ("bucket_failed", container.name, "access denied while listing")
            elif _is_missing_bucket(exc):
                yield ("warning", "bucket %r disappeared while it was listed" % container.name)
                yield ("bucket_done", container.name)
            elif isinstance(exc, ListingIncomplete):
                yield ("bucket_failed", container.name, str(exc))
            else:
                yield ("bucket_failed", container.name, _error_text(exc))
            continue
        yield ("bucket_done", container.name)
    yield ("done",)
