"""Which buckets and objects a job covers (runs in the lister process).

Produces the lister's messages (see worker.py) in listing order, streaming: memory does not
grow with the number of objects in a bucket.

For the S3 family the pages are requested through libcloud's signed connection with
``encoding-type=url``: without it a key holding a control character makes the listing XML
unparsable (radosgw sends it raw), and libcloud's own iterator cannot resume after a failed
page.  Here a failed page is retried from its marker; the listing never restarts.
"""

import re
from urllib.parse import unquote_plus

from .driver import is_s3_family
from .shards import shard_of
from .timeutil import to_epoch

BATCH = 1000
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


def _startup_failure(exc, config):
    if _is_creds_error(exc):
        return "the object store at %s refused the credentials (check key and secret)" % _where(config)
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


def _entry(obj):
    extra = obj.extra or {}
    try:
        mtime = to_epoch(extra.get("last_modified"))
    except ValueError:
        mtime = None
    return (obj.name, int(obj.size or 0), mtime, obj.hash or None, _content_md5(extra))


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
    """The ``(key, size, mtime, etag, None)`` entries of one parsed ListObjects page (for the S3
    family the MD5 is the ETag's, where it is one: fetch.describe).

    Read here rather than through libcloud's ``_to_objs``: that builds an Object with owner
    metadata per key through six XPath searches, which was two thirds of the lister's CPU.
    """
    ns = _namespace(body)
    key_tag, size_tag, date_tag, etag_tag = ns + "Key", ns + "Size", ns + "LastModified", ns + "ETag"
    entries = []
    for element in body.iterfind(ns + "Contents"):
        try:
            mtime = to_epoch(element.findtext(date_tag))
        except ValueError:
            mtime = None
        etag = (element.findtext(etag_tag) or "").replace('"', "") or None
        size = int(element.findtext(size_tag) or 0)
        entries.append((decode(element.findtext(key_tag), errors="strict"), size, mtime, etag, None))
    return entries


class ListingIncomplete(Exception):
    """A listing page said more follows but gave no way to ask for it (no entry, no NextMarker)."""


def _next_marker(body, decode):
    """The ``<NextMarker>`` of a parsed page (URL-decoded where the page is), or None."""
    marker = body.findtext(_namespace(body) + "NextMarker")
    return decode(marker, errors="strict") if marker else None


def _s3_pages(drv, container, prefix, retry):
    """Yield the entries of each ListObjects page, with exact key names.

    The next page is requested (on a helper thread of this process) as soon as the last key
    of the current one is known, so the server works while this page is turned into entries.

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
        pending = request(marker)
        while pending is not None:
            page = pending.result()
            pending = None
            following = _peek_next_marker(page)
            if following is not None and following != marker:
                pending = request(following)  # before this page is parsed: the server works meanwhile
            body = _parse(page)
            decode = _url_decode if text(body, "EncodingType") == "url" else (lambda name, errors=None: name)
            entries = _page_entries(body, decode)
            if pending is None and text(body, "IsTruncated") == "true":
                following = _next_marker(body, decode) or (entries[-1][0] if entries else None)
                if following is None or following == marker:
                    where = "after %r" % marker if marker is not None else "at its start"
                    problem = "a page %s was truncated but named no next key (no entries, no NextMarker)" % where
                    stuck = stuck or retry.start("listing of %s %s" % (container.name, where))
                    if not stuck.retry(problem):
                        raise ListingIncomplete("the listing did not finish: " + problem)
                    following = marker
                else:
                    stuck = None
                pending = request(following)
            if pending is not None:
                marker = following
            if entries:
                yield entries


def _is_transient(exc):
    from .fetch import translate
    from .retry import Transient

    if _is_creds_error(exc) or _is_missing_bucket(exc):
        return False
    return isinstance(translate(exc), Transient)


def _entries(drv, container, prefix, retry):
    if is_s3_family(drv):
        for page in _s3_pages(drv, container, prefix, retry):
            yield from page
    else:
        _retry_each_request(drv, retry, "the listing of %s" % container.name)
        for obj in drv.iterate_container_objects(container, prefix=prefix or None):
            yield _entry(obj)


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


def _batches(drv, container, prefix, retry, shard=None):
    """Batches of entries; when the listing fails, the entries listed before it come first."""
    batch = []
    try:
        for entry in _entries(drv, container, prefix, retry):
            if shard and shard_of(container.name, entry[0], shard[1]) != shard[0]:
                continue
            batch.append(entry)
            if len(batch) >= BATCH:
                yield batch
                batch = []
    except Exception:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


def list_all(drv, config, retry):
    """Yield the lister's messages for one job."""
    prefix = config.get("prefix")
    shard = config.get("shard")
    try:
        containers, warnings = select_buckets(drv, config, retry)
        # Force the first listing request now, so refused credentials fail the job at start.
        first = first_failure = None
        while containers and first is None:
            iterator = _batches(drv, containers[0], prefix, retry, shard)
            try:
                first = next(iterator, [])
            except ListingIncomplete as exc:  # the store answered: a failure of this bucket only
                first, first_failure = [], exc
            except Exception as exc:  # noqa: BLE001 - classified below
                if not _is_missing_bucket(exc):
                    raise
                warnings.append(("error", "bucket %r does not exist; nothing of it is saved"
                                 % containers.pop(0).name))
    except Exception as exc:  # noqa: BLE001 - reported as the job's fatal error
        yield ("fatal", _startup_failure(exc, config))
        return
    yield from warnings
    yield ("ready", [c.name for c in containers])
    for index, container in enumerate(containers):
        try:
            if index == 0:
                if first:
                    yield ("entries", container.name, first)
                if first_failure is not None:
                    raise first_failure
                batches = iterator
            else:
                batches = _batches(drv, container, prefix, retry, shard)
            for batch in batches:
                yield ("entries", container.name, batch)
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
