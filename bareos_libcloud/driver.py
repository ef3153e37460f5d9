"""The libcloud driver, built inside a helper process (never in the job's own interpreter).

Three process-wide settings are made here, which is safe because helper processes are ours:

* ``ALLOW_PATH_DOUBLE_SLASHES``: without it libcloud turns the key ``a//b`` into ``a/b``.
* Response bodies without a charset are decoded as UTF-8.  S3 listings are UTF-8, but requests
  guesses (with chardet inside bareos-fd it guessed MacRoman: real-fd-trace.md 8d).
* ``.`` and ``..`` path segments are sent percent-encoded.  requests/urllib3 would otherwise
  remove them, so the key ``a/../b`` would silently read object ``b`` (s3-servers.md 2).  The
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
"""

import os
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
    """A connected-on-demand libcloud storage driver for ``provider`` (a Provider name).

    ``ca_file``: the CA bundle that TLS connections trust (libcloud's setting is process-wide,
    and this runs in a helper process of its own).
    """
    socket.setdefaulttimeout(timeout)
    _patch_libcloud(timeout)
    if ca_file:
        import libcloud.security

        libcloud.security.CA_CERTS_PATH = ca_file
    from libcloud.storage.providers import get_driver
    from libcloud.storage.types import Provider

    constant = getattr(Provider, provider, None) if provider.isupper() else None
    if constant is None:
        known = sorted(name for name in dir(Provider) if name.isupper())
        raise DriverSetupError(
            "option provider=%r is not a libcloud storage provider (known: %s)" % (provider, ", ".join(known))
        )
    cls = get_driver(constant)
    _read_in_plugin_chunks(cls)
    kwargs = dict(driver_kwargs)
    key = kwargs.pop("key")
    kwargs.setdefault("timeout", timeout)
    try:
        drv = cls(key, **kwargs)
    except TypeError as exc:
        raise DriverSetupError("the libcloud driver for %s does not accept these options: %s" % (provider, exc)) from None
    except ValueError as exc:
        raise DriverSetupError("the libcloud driver for %s refused an option: %s" % (provider, exc)) from None
    if is_s3_family(drv) and not _proxy_configured(drv.connection):
        from .transport import LeanConnection

        drv.connection.conn_class = LeanConnection
        drv.connection.connect()  # the driver connected while it was created
    return drv


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
