"""The libcloud driver, built inside a helper process (never in the job's own interpreter).

Three process-wide settings are made here, which is safe because helper processes are ours:

* ``ALLOW_PATH_DOUBLE_SLASHES``: without it libcloud turns the key ``a//b`` into ``a/b``.
* Response bodies without a charset are decoded as UTF-8.  S3 listings are UTF-8, but requests
  guesses (with chardet inside bareos-fd it guessed MacRoman: real-fd-trace 8d).
* ``.`` and ``..`` path segments are sent percent-encoded.  requests/urllib3 would otherwise
  remove them, so the key ``a/../b`` would silently read object ``b`` (docs/naming.md).  The
  request is still signed over the literal key, which is what the server checks against.
* requests consults the environment for proxies on every request (a quarter of a small GET's
  CPU); when no ``*_proxy`` variable is set, sessions are told not to (``trust_env``).
* The S3 family sends through ``transport.LeanConnection`` (http.client) rather than requests,
  unless a proxy is configured; everything above still applies to the other providers.
* A timeout on every request: libcloud sends downloads with no timeout at all (8d: a stalled
  server blocked forever), so requests' ``Session.send`` gets one when the caller gave none.
* The Azure driver reads downloads from requests in 4 MiB pieces; it is set to the plugin's
  256 KiB, so a fetch helper's stream holds what prefetch.STREAM_HOLD counts, and a broken
  transfer resumes from the last 256 KiB reached rather than the last 4 MiB.

For the S3 family the driver also carries what the plugin adds to its requests: the
``x-amz-request-payer`` header on every request (``request_payer``), the SSE-C customer key for
object GETs (``sse_customer_key_file``, fetch.customer_key_of), and a RegionFollower: a bucket
that answers from another region is reached through a driver for that region from then on.

The driver gets only the options its class takes (:func:`driver_parameters`): libcloud's
constructors swallow unknown keywords, so a typo such as ``bucket_include`` would otherwise back
up every bucket.  Any other name fails the job with one message (options.check_names).
"""

import difflib
import inspect
import os
import re
import socket
from urllib.parse import urlsplit, urlunsplit

_PATCHED = False


class DriverSetupError(Exception):
    """The driver could not be created from the options (message names the problem)."""


def _patch_libcloud(timeout):
    global _PATCHED
    if _PATCHED:
        return
    import libcloud.common.base as base
    import requests

    original_send = requests.Session.send

    def send_with_timeout(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = timeout
        return original_send(self, request, **kwargs)

    requests.Session.send = send_with_timeout
    if not _proxy_env():
        original_session_init = requests.Session.__init__

        def session_init_without_env(self, *args, **kwargs):
            original_session_init(self, *args, **kwargs)
            self.trust_env = False

        requests.Session.__init__ = session_init_without_env
    original_prepare_url = requests.models.PreparedRequest.prepare_url

    def prepare_url_keeping_dots(self, url, params):
        original_prepare_url(self, url, params)
        fixed = encode_dot_segments(urlsplit(str(url)).path)
        if fixed is not None:
            parts = urlsplit(self.url)
            self.url = urlunsplit((parts.scheme, parts.netloc, fixed, parts.query, parts.fragment))

    requests.models.PreparedRequest.prepare_url = prepare_url_keeping_dots

    base.ALLOW_PATH_DOUBLE_SLASHES = True
    original_init = base.Response.__init__

    def init_with_utf8(self, response, connection):
        content_type = response.headers.get("content-type", "") or ""
        if "charset=" not in content_type.lower():
            response.encoding = "utf-8"
        original_init(self, response, connection)

    base.Response.__init__ = init_with_utf8
    _PATCHED = True


def is_s3_family(driver):
    """True for S3 and the S3-compatible drivers (RGW, MinIO, GCS, Spaces...).

    For these the plugin lists and reads through the driver's signed connection itself (URL-
    encoded listings, response headers, ranged resumes); every other provider goes through
    libcloud's generic iterate_container_objects and download_object_as_stream.
    """
    from libcloud.storage.drivers.s3 import BaseS3StorageDriver

    return isinstance(driver, BaseS3StorageDriver)


def encode_dot_segments(path):
    """``path`` with ``.``/``..`` segments percent-encoded, or None when it has none."""
    segments = path.split("/")
    if not any(segment in (".", "..") for segment in segments):
        return None
    return "/".join({".": "%2E", "..": "%2E%2E"}.get(segment, segment) for segment in segments)


def make_driver(provider, driver_kwargs, timeout, ca_file=None, follow_regions=True):
    """A connected-on-demand libcloud storage driver for ``provider`` (a Provider name, any case).

    ``driver_kwargs``: options.DriverKwargs, the options the plugin does not read itself; each
    must be a parameter of the driver class.  ``ca_file``: the CA bundle that TLS connections
    trust (libcloud's setting is process-wide, and this runs in a helper process of its own).
    ``follow_regions``: an S3-family driver follows a bucket to its region (RegionFollower).
    """
    socket.setdefaulttimeout(timeout)
    _patch_libcloud(timeout)
    if ca_file:
        import libcloud.security

        libcloud.security.CA_CERTS_PATH = ca_file
    from libcloud.common.base import ConnectionUserAndKey

    from ..options import OptionError, check_names, driver_takes

    name, cls = _driver_class(provider)
    late, unusable = _misplaced(cls)
    params = driver_parameters(cls) - set(unusable)
    for option in unusable:
        if option in driver_kwargs:
            raise DriverSetupError("option %s cannot be used with provider %s: libcloud's driver cannot pass it "
                                   "to its connection (see %s)" % (option, name, driver_takes(name, params)))
    try:
        check_names(list(driver_kwargs), params, getattr(driver_kwargs, "unshown", ()), name)
    except OptionError as exc:
        raise DriverSetupError(str(exc)) from None
    if driver_kwargs.get("secret") is None and issubclass(cls.connectionCls, ConnectionUserAndKey):
        raise DriverSetupError("mandatory option secret is missing (in the plugin string or a credentials_file)")
    _read_in_plugin_chunks(cls)
    kwargs = dict(driver_kwargs)
    key = kwargs.pop("key")
    if "timeout" in params:
        kwargs.setdefault("timeout", timeout)
    late = {option: kwargs.pop(option) for option in late if option in kwargs}
    try:
        drv = cls(key, **kwargs)
    except TypeError as exc:
        raise DriverSetupError("the libcloud driver for %s does not accept these options: %s" % (name, exc)) from None
    except ValueError as exc:
        raise DriverSetupError("the libcloud driver for %s refused an option: %s" % (name, exc)) from None
    for option, value in late.items():
        setattr(drv.connection, option, value)
    reconnect = bool(late)
    if not drv.connection.timeout:  # a class without a timeout parameter (MINIO)
        drv.connection.timeout = timeout
        reconnect = True
    if is_s3_family(drv) and not _proxy_configured(drv.connection):
        from .transport import LeanConnection

        drv.connection.conn_class = LeanConnection
        reconnect = True
    if reconnect:
        drv.connection.connect()  # the driver connected while it was created
    _keep_bytes_encoded(drv)
    _sign_subresources(drv)
    _add_plugin_requests(drv, name, driver_kwargs)
    if is_s3_family(drv):
        follower = RegionFollower(drv, name, driver_kwargs, params)
        follower.regional = lambda region: make_driver(provider, _in_region(driver_kwargs, region), timeout,
                                                       ca_file, follow_regions=False)
        if follow_regions:
            follower.install()
    return drv


#: The query parameters S3's SigV2 signs as part of the resource (AWS's "sub-resources").
SIGV2_SUBRESOURCES = frozenset((
    "acl", "cors", "delete", "lifecycle", "location", "logging", "notification", "partNumber", "policy",
    "requestPayment", "restore", "tagging", "torrent", "uploadId", "uploads", "versionId", "versioning",
    "versions", "website", "response-cache-control", "response-content-disposition", "response-content-encoding",
    "response-content-language", "response-content-type", "response-expires",
))


def _sign_subresources(drv):
    """Have libcloud's S3 SigV2 (the S3_RGW default) sign the sub-resources of a request.

    Its signature covers the path only, so a store refuses every request libcloud sends with
    ``?uploads``, ``?partNumber=..&uploadId=..`` (multipart uploads) or ``?tagging`` in its
    params.  AWS's rule: the resource signed is the path, then ``?`` and the sub-resources
    among the params, sorted, as ``name`` or ``name=value``."""
    from libcloud.common.aws import SignedAWSConnection

    connection = drv.connection
    if not is_s3_family(drv) or isinstance(connection, SignedAWSConnection):
        return
    sign = connection.pre_connect_hook

    def pre_connect_hook(params, headers):
        subresources = sorted(name for name in params if name in SIGV2_SUBRESOURCES)
        if not subresources:
            return sign(params, headers)
        action = connection.action
        connection.action = action + "?" + "&".join(
            name if params[name] in ("", None) else "%s=%s" % (name, params[name]) for name in subresources)
        try:
            return sign(params, headers)
        finally:
            connection.action = action

    connection.pre_connect_hook = pre_connect_hook


def _keep_bytes_encoded(drv):
    """Have the driver's downloads give the object's bytes as stored.

    Through requests (every provider outside the lean transport: Azure, Swift...), libcloud's
    ``iter_content`` undoes a ``Content-Encoding: gzip`` the object was stored with: the backup
    would hold other bytes than the object's, which the size and MD5 checks refuse, so such an
    object could never be saved.  Its raw stream is read instead."""
    if uses_lean_transport(drv):
        return  # http.client decodes nothing
    driver_raw = drv.connection.rawResponseCls  # the driver's own (its parse_error)

    class StoredBytes(driver_raw):
        def __init__(self, connection, response=None):
            super().__init__(connection, response)
            raw = getattr(response, "raw", None)
            if raw is not None and hasattr(raw, "stream") and not getattr(response, "_content_consumed", True):
                self.iter_content = lambda chunk_size=1, decode_unicode=False: raw.stream(chunk_size,
                                                                                         decode_content=False)

        def success(self):
            # A range's 206 too: libcloud's RawResponse would read its body as an error's (the
            # bytes then come from requests' decoded copy), where the caller reads it as data.
            return self.status == 206 or super().success()

    drv.connection.rawResponseCls = StoredBytes


def _add_plugin_requests(drv, name, driver_kwargs):
    """What the plugin adds to the driver's requests: request_payer, the SSE-C customer key."""
    customer_key = getattr(driver_kwargs, "customer_key", None)
    request_payer = getattr(driver_kwargs, "request_payer", False)
    for option, given in (("sse_customer_key_file", customer_key is not None), ("request_payer", request_payer)):
        if given and not is_s3_family(drv):
            raise DriverSetupError("option %s is for providers of the S3 family; %s is not one" % (option, name))
    drv.bareos_customer_key = customer_key
    if request_payer:
        add_default_headers = drv.connection.add_default_headers

        def add_request_payer(headers):
            headers = add_default_headers(headers)
            headers["x-amz-request-payer"] = "requester"  # signed with the others
            return headers

        drv.connection.add_default_headers = add_request_payer


def _in_region(driver_kwargs, region):
    """``driver_kwargs`` (a copy, with what DriverKwargs carries) for a driver in ``region``."""
    import copy

    regional = copy.copy(driver_kwargs)
    regional["region"] = region
    return regional


def _bucket_of(action):
    """The bucket a path-style request path names (``/bucket/key``), or None (``/``)."""
    name = action.split("?", 1)[0].lstrip("/").split("/", 1)[0]
    return name or None


class RegionFollower:
    """Routes the requests of an S3-family driver for a bucket in another region.

    Amazon S3 answers a request for a bucket of another region with 301 PermanentRedirect
    (sent to another region's endpoint) or 400 AuthorizationHeaderMalformed (signed for another
    region), naming the bucket's region in ``x-amz-bucket-region`` or ``<Region>``
    (fetch.region_answer).  The request is then sent again through a driver made with the same
    options and ``region`` set to that one (libcloud's S3 driver takes that region's endpoint
    where no ``host`` is given; with a ``host`` only the signature's region changes), and so is
    every later request for the bucket.  One driver per region, in each helper process.  A
    region answer that names no region, a region the driver cannot take, or a bucket that
    answers so again from its region fails with one FetchError naming the problem.
    """

    def __init__(self, drv, name, driver_kwargs, params):
        self.home = drv
        self.name = name
        self.takes_region = "region" in params
        self.home_region = getattr(drv, "region_name", None) or driver_kwargs.get("region")
        self.regional = None  # region -> a driver there (set by make_driver)
        self.buckets = {}  # bucket -> the driver of its region
        self.drivers = {}  # region -> driver
        self.send = drv.connection.request
        _answer_regions(drv.connection)
        drv.bareos_regions = self

    def install(self):
        self.home.connection.request = self.request

    def driver_for(self, bucket):
        """The driver that reaches ``bucket`` (the home one until it answered from elsewhere)."""
        return self.buckets.get(bucket, self.home)

    def request(self, action, *args, **kwargs):
        """libcloud's Connection.request, for the bucket's region."""
        from .fetch import OtherRegion, RegionNotFollowed

        bucket = _bucket_of(action)
        there = self.buckets.get(bucket)
        if there is not None:
            return _sent_there(there, bucket, action, args, kwargs)
        try:
            response = self.send(action, *args, **kwargs)
        except (OtherRegion, RegionNotFollowed) as exc:
            answer = exc
        else:
            answer = _region_of(response)
            if answer is None or answer.region == self.home_region:
                return response  # a 400 about something else
        if bucket is None:
            raise answer
        if not isinstance(answer, OtherRegion):
            raise RegionNotFollowed("bucket %r: %s" % (bucket, answer))
        return _sent_there(self.follow(bucket, answer.region), bucket, action, args, kwargs)

    def follow(self, bucket, region):
        """The driver for ``bucket`` in ``region`` from now on (RegionNotFollowed if there is none)."""
        from .fetch import RegionNotFollowed

        there = self.drivers.get(region)
        if there is None:
            why = None
            if region == self.home_region:
                why = ("that is the region the request was signed for: the endpoint (option host) must be "
                       "one that serves the bucket")
            elif not self.takes_region:
                why = "the libcloud driver for %s takes no option region" % self.name
            else:
                try:
                    there = self.regional(region)
                except DriverSetupError as exc:
                    why = str(exc)
            if there is None:
                raise RegionNotFollowed("bucket %r is in region %s, which the plugin cannot follow: %s"
                                        % (bucket, region, why)) from None
            self.drivers[region] = there
        self.buckets[bucket] = there
        return there


def _answer_regions(connection):
    """Have ``connection`` raise fetch.region_answer's error for a 301/307 (libcloud's own
    LibcloudError says only "located in a different region")."""
    for attribute in ("responseCls", "rawResponseCls"):
        base = getattr(connection, attribute)

        class Answering(base):
            def parse_error(self):
                from .fetch import region_answer

                if self.status in (301, 307):
                    raise region_answer(self.status, self.headers, self.body)
                return super().parse_error()

        setattr(connection, attribute, Answering)


def _region_of(response):
    """The fetch.OtherRegion of a 400 answer to a request signed for another region, else None.
    A raw (streamed) answer's body, read here, is still there to iterate."""
    if response.status != 400:
        return None
    from .fetch import OtherRegion, region_answer

    body = response.body
    if isinstance(body, (bytes, bytearray)):
        response.iter_content = lambda chunk_size=1, decode_unicode=False: iter((body,) if body else ())
    answer = region_answer(400, response.headers, body)
    return answer if isinstance(answer, OtherRegion) else None


def _sent_there(drv, bucket, action, args, kwargs):
    """The request sent through ``drv``, the driver of ``bucket``'s region; a region answer
    from there too is a FetchError."""
    from .fetch import OtherRegion, RegionNotFollowed

    try:
        response = drv.connection.request(action, *args, **kwargs)
        answer = _region_of(response)
    except (OtherRegion, RegionNotFollowed) as exc:
        answer = exc
    if answer is None:
        return response
    raise RegionNotFollowed("bucket %r answered a request signed for its region %s that it is elsewhere (%s)"
                            % (bucket, getattr(drv, "region_name", "?"), answer))


def driver_for_bucket(drv, bucket):
    """The driver that reaches ``bucket``: ``drv``, or the one of the bucket's region."""
    follower = getattr(drv, "bareos_regions", None)
    return follower.driver_for(bucket) if follower is not None else drv


def follow_region(drv, bucket, region):
    """From now on reach ``bucket`` through a driver for ``region`` (a region answer the job
    got to a GET the signer signed); FetchError when it cannot."""
    follower = getattr(drv, "bareos_regions", None)
    if follower is None:
        from .fetch import RegionNotFollowed

        raise RegionNotFollowed("bucket %r is in region %s, and this driver cannot follow it" % (bucket, region))
    return follower.follow(bucket, region)


def _driver_class(provider):
    """``(Provider name, driver class)`` for ``provider``, whose case does not matter."""
    from libcloud.storage.providers import get_driver
    from libcloud.storage.types import Provider

    name = provider.strip().upper()
    known = sorted(item for item in dir(Provider) if item.isupper() and isinstance(getattr(Provider, item), str))
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = "did you mean %s? " % close[0] if close else ""
        raise DriverSetupError(
            "option provider=%r is not a libcloud storage provider (%sknown: %s)" % (provider, hint, ", ".join(known))
        )
    try:
        return name, get_driver(getattr(Provider, name))
    except Exception as exc:  # noqa: BLE001 - e.g. LOCAL without its fasteners package
        raise DriverSetupError("the libcloud driver for %s cannot be loaded: %s" % (name, exc)) from None


#: How BaseDriver hands its options to the connection class: by position, in this order.
_CONNECTION_POSITIONS = ("user_id", "key", "secure", "host", "port")


def _misplaced(cls):
    """``(late, unusable)``: ``host``/``port`` where the connection class of ``cls`` takes them
    elsewhere than where BaseDriver puts them (by position: key, secret, secure, host, port).

    ``late``: another parameter is at their place (GOOGLE_STORAGE's connection has ``auth_type``
    and ``credential_file`` there, so a ``host`` became its auth type); they are set on the
    connection once it is made.  ``unusable``: nothing is there (OPENSTACK_SWIFT's connection
    takes its endpoint from the auth service, and libcloud fails with a TypeError).
    """
    positions = _positional_parameters(cls.connectionCls)
    late, unusable = [], []
    for index, option in enumerate(_CONNECTION_POSITIONS):
        if option not in ("host", "port") or positions is None:
            continue
        if index >= len(positions):
            unusable.append(option)
        elif positions[index] != option:
            late.append(option)
    return late, unusable


def _positional_parameters(klass):
    """The positional parameters of ``klass.__init__``, following ``*args`` up the MRO; None
    where they cannot be read."""
    for _, params in _own_inits(klass):
        if params is None:
            return None
        if not any(p.kind is p.VAR_POSITIONAL for p in params):
            return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return None


def driver_parameters(cls):
    """The keyword parameters the storage driver class ``cls`` takes.

    Those of its ``__init__``; where that passes ``**kwargs`` on, those of the next ``__init__``
    in the MRO, and so on; and the names an ``__init__`` reads from its ``**kwargs`` itself
    (BaseDriver's ``timeout`` and ``proxy_url``, S3_RGW's ``signature_version``).
    """
    names = set()
    for init, params in _own_inits(cls):
        if params is None:
            break
        names.update(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        var_keyword = [p.name for p in params if p.kind is p.VAR_KEYWORD]
        if not var_keyword:
            break
        names.update(_read_from(init, var_keyword[0]))
    return names


def _own_inits(klass):
    """``(__init__, its parameters without self)`` for each class in ``klass``'s MRO that
    defines one (parameters None where its signature cannot be read)."""
    for base in klass.__mro__:
        init = vars(base).get("__init__")
        if init is None or base is object:
            continue
        try:
            yield init, list(inspect.signature(init).parameters.values())[1:]
        except (TypeError, ValueError):
            yield init, None


def _read_from(function, mapping):
    """The string keys ``function``'s source reads from its dict ``mapping`` (``.pop``/``.get``)."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):  # no source installed: its signature still counts
        return set()
    pattern = r"\b%s\s*\.\s*(?:pop|get)\(\s*[\"'](\w+)[\"']" % re.escape(mapping)
    return set(re.findall(pattern, source))


def _read_in_plugin_chunks(cls):
    """Downloads of ``cls``'s module read from requests in the plugin's chunk size (Azure's 4 MiB)."""
    import sys

    from .fetch import CHUNK_SIZE

    module = sys.modules.get(cls.__module__)
    if getattr(module, "AZURE_DOWNLOAD_CHUNK_SIZE", None):
        module.AZURE_DOWNLOAD_CHUNK_SIZE = CHUNK_SIZE


def uses_lean_transport(drv):
    """True when the driver sends through transport.LeanConnection (S3 family, no proxy)."""
    from .transport import LeanConnection

    return drv.connection.conn_class is LeanConnection


def _proxy_configured(connection):
    return bool(getattr(connection, "proxy_url", None)) or _proxy_env()


def _proxy_env():
    """True when any ``*_proxy`` variable is set (requests would consult them)."""
    return any(name.lower().endswith("_proxy") for name in os.environ)
