"""A lean HTTP transport for libcloud's S3-family connections (runs in helper processes).

libcloud still builds and signs every request; this only sends it, over one keep-alive
``http.client`` connection, in place of requests/urllib3.  It plugs in through libcloud's own
extension point, ``Connection.conn_class``, and offers what libcloud's Response classes read
of a ``requests.Response``.  Profiled in a prefetcher (docs/design.md, "Transport"), requests
and urllib3 took about three quarters of the CPU of a small GET.

On purpose, unlike requests:

* Object bytes are handed on exactly as the server sent them.  An object stored with
  ``Content-Encoding: gzip`` is backed up as its stored bytes (requests would inflate them and
  the byte count would no longer match the object's size).  Only bodies read whole (listings,
  error documents) are inflated if the server compressed them.
* No proxies and no redirects: driver.py keeps requests where a proxy is configured.
* ``.`` and ``..`` path segments are sent percent-encoded, like the patched requests path
  (driver.encode_dot_segments).
"""

import http.client
import ssl
import zlib

#: Errors of a reused keep-alive connection that the server closed while it was idle.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
_IDEMPOTENT = ("GET", "HEAD", "DELETE")


def _inflate(body, encoding):
    encoding = (encoding or "").strip().lower()
    if encoding == "gzip":
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)
    return body


def _charset(content_type):
    for part in (content_type or "").split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"  # S3 documents are UTF-8 (a guess here went wrong in bareos-fd, 8d)


def _on_the_wire(method, url, headers):
    """Method, request-target (``.``/``..`` segments percent-encoded) and headers as sent."""
    from .driver import encode_dot_segments

    path, mark, query = url.partition("?")
    path = encode_dot_segments(path) or path
    return method.upper(), path + mark + query, {name: str(value) for name, value in (headers or {}).items()}


class LeanResponse:
    """The parts of ``requests.Response`` that libcloud's Response classes use."""

    request = None

    def __init__(self, raw):
        self._raw = raw
        self.status_code = raw.status
        self.reason = raw.reason
        self.headers = {}
        for name, value in raw.getheaders():
            name = name.lower()
            self.headers[name] = "%s, %s" % (self.headers[name], value) if name in self.headers else value
        self._content = None

    @property
    def finished(self):
        return self._raw.isclosed()

    @property
    def content(self):
        """The whole body, inflated if the server compressed it."""
        if self._content is None:
            self._content = _inflate(self._raw.read(), self.headers.get("content-encoding"))
        return self._content

    @property
    def text(self):
        return self.content.decode(_charset(self.headers.get("content-type")), errors="replace")

    def iter_content(self, chunk_size=1, decode_unicode=False):
        """The body as the server sent it, in chunks of ``chunk_size`` (the last may be shorter)."""
        raw = self._raw
        while True:
            left = raw.length
            size = chunk_size if left is None else min(chunk_size, left)
            if size <= 0:
                break
            chunk = bytearray(size)
            got = raw.readinto(chunk)
            if not got:
                break
            if got < size:
                del chunk[got:]
            yield chunk
        raw.close()

    def close(self):
        self._raw.close()


class LeanConnection:
    """libcloud's transport interface (``LibcloudConnection``) over one http.client connection."""

    def __init__(self, host, port, secure=None, timeout=None, **kwargs):
        self.host = host
        self.port = int(port)
        self.secure = bool(secure)
        self.timeout = timeout
        self.response = None
        self._conn = None
        self._used = False

    def _new_connection(self):
        if not self.secure:
            return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        import libcloud.security

        if libcloud.security.VERIFY_SSL_CERT:
            context = ssl.create_default_context(cafile=libcloud.security.CA_CERTS_PATH)
        else:
            context = ssl._create_unverified_context()  # the admin turned verification off
        return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=context)

    def _send(self, method, url, body, headers):
        if self._conn is None:
            self._conn = self._new_connection()
            self._used = False
        reused = self._used
        self._used = True
        try:
            self._conn.request(method, url, body=body, headers=headers)
            return self._conn.getresponse()
        except _STALE:
            self.close()
            if not reused or body is not None or method.upper() not in _IDEMPOTENT:
                raise
            return self._send(method, url, body, headers)  # once more, on a fresh connection
        except BaseException:
            self.close()
            raise

    def request(self, method, url, body=None, headers=None, raw=False, stream=False, hooks=None):
        if self.response is not None and not self.response.finished:
            self.close()  # the last body was not read to its end: the socket cannot be reused
        method, url, headers = _on_the_wire(method, url, headers)
        self.response = LeanResponse(self._send(method, url, body, headers))

    prepared_request = request

    def getresponse(self):
        return self.response

    def connect(self):
        pass

    def close(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None


class _Unsent:
    """The answer libcloud gets from a RequestRecorder: nothing was sent."""

    status_code = 200
    reason = "OK"
    request = None
    headers = {}
    text = content = ""

    def iter_content(self, chunk_size=1, decode_unicode=False):
        return iter(())


class RequestRecorder(LeanConnection):
    """Stands in for the transport during one call and keeps the signed request instead of sending it."""

    recorded = None

    def request(self, method, url, body=None, headers=None, raw=False, stream=False, hooks=None):
        self.recorded = _on_the_wire(method, url, headers)
        self.response = _Unsent()

    prepared_request = request


def signed_get(drv, path, headers):
    """A GET of ``path`` as libcloud would send it (signed), for another process to send.

    Returns a dict: scheme, host, port, target, headers, and the TLS settings libcloud uses.
    The signature is valid for minutes (SigV4 dates, SigV2 ``Expires``): sign just before use.
    """
    connection = drv.connection
    recorder = RequestRecorder(connection.host, connection.port, connection.secure)
    sender, connection.connection = connection.connection, recorder
    try:
        connection.request(path, method="GET", headers=headers, raw=True, stream=True)
    finally:
        connection.connection = sender
    return _request(connection, *recorder.recorded)


def _request(connection, method, target, headers):
    """The dict signed_get returns: a request as sent on the wire, and where and how to send it."""
    import libcloud.security

    return {
        "secure": bool(connection.secure),
        "host": connection.host,
        "port": int(connection.port),
        "method": method,
        "target": target,
        "headers": headers,
        "verify": bool(libcloud.security.VERIFY_SSL_CERT),
        "cafile": libcloud.security.CA_CERTS_PATH,
    }


def cache_signing_key(drv):
    """Have ``drv``'s SigV4 signer derive its signing key once a day, not for every request
    (four HMACs of the six a signature takes).  Other signers are left as they are."""
    signer = getattr(drv.connection, "signer", None)
    derive = getattr(signer, "_get_key_to_sign_with", None)
    if derive is None or getattr(derive, "cached", False):
        return
    keys = {}

    def cached(dt):
        # The key depends on the day, the region and the service; the last two are the driver's.
        day = dt.strftime("%Y%m%d")
        key = keys.get(day)
        if key is None:
            keys.clear()
            key = keys[day] = derive(dt)
        return key

    cached.cached = True
    signer._get_key_to_sign_with = cached


class QuickSigner:
    """signed_get for many GETs: libcloud's own hooks build and sign each request
    (``add_default_params``, ``add_default_headers``, ``pre_connect_hook``, where the signature is
    made), without the rest of ``Connection.request`` (a recording transport and a response
    object per call: two thirds of signed_get's CPU).

    The first request is signed both ways and compared: where the two differ (a libcloud
    version or driver whose ``request`` adds something else), every request goes through
    signed_get.
    """

    TRIES = 3  # the two signatures may fall on either side of a second

    def __init__(self, drv):
        self.drv = drv
        self.checked = False
        self.agrees = False
        connection = drv.connection
        port = int(connection.port)
        self.host_header = connection.host if port in (80, 443) else "%s:%d" % (connection.host, port)
        self.agent = connection._user_agent()

    def sign(self, path, headers):
        if not self.checked:
            self.checked = True
            self.agrees = any(self._quick(path, headers) == signed_get(self.drv, path, headers)
                              for _ in range(self.TRIES))
        if not self.agrees:
            return signed_get(self.drv, path, headers)
        return self._quick(path, headers)

    def _quick(self, path, extra):
        from urllib.parse import urlencode

        connection = self.drv.connection
        action = connection.morph_action_hook(path)
        connection.action, connection.method, connection.data = action, "GET", None
        params = connection.add_default_params({})
        headers = connection.add_default_headers(dict(extra))
        headers["User-Agent"] = self.agent
        headers["Accept-Encoding"] = "gzip,deflate"
        headers["Host"] = self.host_header
        params, headers = connection.pre_connect_hook(params, headers)
        url = action
        if params:
            url = ("&" if "?" in action else "?").join((action, urlencode(params, doseq=True)))
        return _request(connection, *_on_the_wire("GET", url, headers))
