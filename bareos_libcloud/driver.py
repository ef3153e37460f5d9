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
  256 KiB, so a prefetcher's stream holds what prefetch.STREAM_HOLD counts, and a broken
  transfer resumes from the last 256 KiB reached rather than the last 4 MiB.

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


def make_driver(provider, driver_kwargs, timeout, ca_file=None):
    """A connected-on-demand libcloud storage driver for ``provider`` (a Provider name, any case).

    ``driver_kwargs``: options.DriverKwargs, the options the plugin does not read itself; each
    must be a parameter of the driver class.  ``ca_file``: the CA bundle that TLS connections
    trust (libcloud's setting is process-wide, and this runs in a helper process of its own).
    """
    socket.setdefaulttimeout(timeout)
    _patch_libcloud(timeout)
    if ca_file:
        import libcloud.security

        libcloud.security.CA_CERTS_PATH = ca_file
    from libcloud.common.base import ConnectionUserAndKey

    from .options import OptionError, check_names, driver_takes

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
    return drv


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
