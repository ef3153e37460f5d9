"""A fault-injecting HTTP/1.1 reverse proxy for S3 tests (stdlib only, no pytest dependency).

    from faultproxy import FaultProxy

    with FaultProxy(moto.host, moto.port) as proxy:      # listens on 127.0.0.1:<free port>
        client = boto3 / libcloud pointed at proxy.host, proxy.port
        proxy.respond(503, times=2, method="GET", match="/bkt/key")   # SlowDown twice
        proxy.reset_after(1000, match="/bkt/big")       # RST after 1000 body bytes
        proxy.stall(2.0, after_bytes=0, then="close")   # headers, 2 s silence, close
        proxy.refuse(times=1)                           # next new connection closed at once
        proxy.cut_listing(after_keys=3)                 # next V1 listing page truncated at 3 keys
        proxy.rechunk(match="/bkt/big")                 # body sent chunked: no Content-Length
        proxy.set_headers({"ETag": '"..."'}, match="/bkt/k")   # forwarded, these headers answered
        proxy.respond(400, if_header={"x-amz-server-side-encryption-customer-key": None})
        ...
        assert [e.status for e in proxy.entries(method="GET", match="big")] == [200, 206]
        assert proxy.entries(match="big")[1].header("Range") == "bytes=1000-"

Forwarding is byte-exact: the request line (so the request-target, e.g. ``/b/a/%2E%2E/c`` or
``/b/a//c``), every header line (Host and Authorization included, as received: the client signed
the proxy's ``127.0.0.1:<port>``, and the server checks the signature against the Host it
receives, which is that same header) and the body (Content-Length or chunked, relayed raw) go to
the upstream unchanged.  Responses are relayed raw too, except when ``cut_listing`` or ``rechunk`` rewrites one.
Each client connection gets its own upstream connection (opened lazily, reopened when the server
closed an idle one), so keep-alive works on both sides.  ``Expect: 100-continue`` and interim
1xx answers are relayed.

Rules (all thread-safe, settable while requests run) match requests by ``method`` (None: any)
and ``match``: None (any), a substring of the raw request-target (path and query as on the
wire), a compiled regex (``re.search``) or a callable(method, target) -> bool, and by
``if_header``, a dict {header name: condition} that the request's headers must all meet: None
(the header is absent), True (present) or a string (a substring of its value; e.g. the region
of a SigV4 Authorization header, "/us-east-1/s3/").  ``times`` is how
many matching requests the rule acts on (None: forever).  Rules are tried in the order they were
added; the first live one that matches acts, and only that one.  Each setter returns its
``Rule``; ``rule.hits`` counts the requests it acted on, ``rule.cancel()`` retires it.

``log`` (and ``entries()``) lists one ``LogEntry`` per request: iterating it gives
``(method, target, status, sent)`` where ``sent`` is the number of response body bytes sent to the
client; it also has ``headers`` (the request's header list), ``header(name)``, ``fault`` (which
rule acted, or None), ``error`` and ``resp_headers``.  An entry is appended when the request has
been read, and completed before the last response byte (or the reset) goes out, so a client that
saw the response or the error can assert on the log at once.
"""

import re
import select
import socket
import struct
import threading
import time
from urllib.parse import unquote_plus

__all__ = ["FaultProxy", "LogEntry", "Rule", "s3_error_body"]

HOST = "127.0.0.1"
MAX_HEAD = 256 * 1024
CHUNK = 64 * 1024

# status -> (S3 error code, message) for respond() without a body
S3_ERRORS = {
    400: ("BadRequest", "Bad Request"),
    403: ("AccessDenied", "Access Denied"),
    404: ("NoSuchKey", "The specified key does not exist."),
    409: ("OperationAborted", "A conflicting conditional operation is in progress."),
    429: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    501: ("NotImplemented", "A header you provided implies functionality that is not implemented."),
    502: ("BadGateway", "Bad Gateway"),
    503: ("SlowDown", "Please reduce your request rate."),
    504: ("GatewayTimeout", "Gateway Timeout"),
}
REASONS = {200: "OK", 206: "Partial Content", 400: "Bad Request", 403: "Forbidden",
           404: "Not Found", 409: "Conflict", 429: "Too Many Requests",
           500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout"}

# query parameters of a ListObjects (V1/V2) request; any other one (location, acl, uploads,
# versions, ...) makes a bucket GET something else
LISTING_PARAMS = {"prefix", "marker", "delimiter", "max-keys", "encoding-type", "list-type",
                  "continuation-token", "start-after", "fetch-owner", "allow-unordered",
                  # query authentication (SigV2, presigned SigV4) and libcloud's Version
                  "awsaccesskeyid", "expires", "signature", "version", "x-id"}


def _xml_escape(text):
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def s3_error_body(code, message="", resource="", request_id="faultproxy"):
    """An S3 ``<Error>`` document (bytes)."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
            "<Resource>%s</Resource><RequestId>%s</RequestId></Error>"
            % (_xml_escape(code), _xml_escape(message), _xml_escape(resource),
               _xml_escape(request_id))).encode("utf-8")


class _Closed(Exception):
    """The peer closed the connection (or it was reset) where more bytes were expected."""


class _Aborted(Exception):
    """The exchange ended on purpose (fault injected); close the client connection."""


def _rst_close(sock):
    """Close with RST instead of FIN (SO_LINGER on, timeout 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Reader:
    """Buffered reads from a socket, byte-exact."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self):
        data = self.sock.recv(CHUNK)
        if not data:
            raise _Closed("connection closed")
        self.buf += data

    def buffered(self):
        return len(self.buf)

    def readline(self, limit=MAX_HEAD):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise _Closed("line too long")
            self._fill()

    def read_some(self, n):
        """Between 1 and n bytes."""
        if not self.buf:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def at_eof_or_data(self):
        """True when the idle peer has closed (or sent something unexpected)."""
        if self.buf:
            return True
        try:
            r, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(r)


class _Message:
    """The head of a request or response: first line plus raw header lines."""

    def __init__(self, first, lines):
        self.first = first            # bytes, without CRLF
        self.lines = lines            # raw header lines (bytes, with their line endings)
        self.headers = []             # [(name, value)] as str (latin-1)
        for raw in lines:
            text = raw.decode("latin-1").rstrip("\r\n")
            if ":" in text:
                name, _, value = text.partition(":")
                self.headers.append((name.strip(), value.strip()))

    def get(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def tokens(self, name):
        out = []
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out

    def raw(self, first=None, lines=None):
        return ((first if first is not None else self.first) + b"\r\n"
                + b"".join(self.lines if lines is None else lines) + b"\r\n")


def _read_head(reader, first_line=None):
    first = first_line if first_line is not None else reader.readline()
    while first in (b"\r\n", b"\n"):  # RFC 7230 3.5: ignore empty lines before a request
        first = reader.readline()
    lines, size = [], len(first)
    while True:
        line = reader.readline()
        size += len(line)
        if size > MAX_HEAD:
            raise _Closed("head too large")
        if line in (b"\r\n", b"\n"):
            break
        lines.append(line)
    return _Message(first.rstrip(b"\r\n"), lines)


class LogEntry:
    """One request through the proxy. ``tuple(entry) == (method, target, status, sent)``."""

    def __init__(self, conn, method, target, version, headers):
        self.conn = conn              # client connection number (1, 2, ...)
        self.method = method
        self.target = target          # raw request-target, latin-1 decoded, exactly as received
        self.version = version
        self.headers = headers        # [(name, value)] of the request, in order
        self.status = None            # status sent to the client (None: none was)
        self.sent = 0                 # response body bytes sent to the client
        self.fault = None             # "respond", "reset", "stall", "cut_listing:truncate", ...
        self.error = None             # what went wrong on the way, if anything
        self.resp_headers = []
        self.started = time.monotonic()
        self.finished = None

    @property
    def path(self):
        return self.target.split("?", 1)[0]

    @property
    def query(self):
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def __iter__(self):
        return iter((self.method, self.target, self.status, self.sent))

    def __eq__(self, other):
        if isinstance(other, tuple):
            return tuple(self) == other
        return self is other

    __hash__ = object.__hash__

    def __repr__(self):
        return "<LogEntry #%s %s %s -> %s sent=%d%s%s>" % (
            self.conn, self.method, self.target, self.status, self.sent,
            " fault=%s" % self.fault if self.fault else "",
            " error=%s" % self.error if self.error else "")


class Rule:
    """A fault rule. ``kind`` is respond/reset/stall/cut_listing/rechunk/refuse/set_headers."""

    def __init__(self, proxy, kind, times, method, match, if_header=None, **params):
        if times is not None and times < 0:
            raise ValueError("times must be >= 0 or None")
        self.proxy = proxy
        self.kind = kind
        self.remaining = times
        self.method = method.upper() if method else None
        self.match = match
        self.if_header = dict(if_header or {})
        self.params = params
        self.hits = 0

    @property
    def live(self):
        return self.remaining is None or self.remaining > 0

    def headers_meet(self, headers):
        """Whether request ``headers`` ([(name, value)]) meet every ``if_header`` condition."""
        for name, condition in self.if_header.items():
            values = [v for k, v in headers or () if k.lower() == name.lower()]
            if condition is None:
                if values:
                    return False
            elif not values:
                return False
            elif condition is not True and not any(condition in v for v in values):
                return False
        return True

    def matches(self, method, target, headers=None):
        if self.method is not None and method != self.method:
            return False
        if self.if_header and not self.headers_meet(headers):
            return False
        m = self.match
        if m is None:
            return True
        if callable(m) and not hasattr(m, "search"):
            return bool(m(method, target))
        if hasattr(m, "search"):
            return m.search(target) is not None
        return m in target

    def cancel(self):
        with self.proxy._lock:
            self.remaining = 0

    def __repr__(self):
        return "<Rule %s %s match=%r remaining=%s hits=%d>" % (
            self.kind, self.method or "*", self.match, self.remaining, self.hits)


def _is_listing(method, target):
    """A ListObjects request: GET /<bucket> or /<bucket>/ with only listing parameters."""
    if method != "GET":
        return False
    path, _, query = target.partition("?")
    if not re.fullmatch(r"/[^/?]+/?", path):
        return False
    for part in query.split("&"):
        name = part.split("=", 1)[0].lower()
        if part and name not in LISTING_PARAMS and not name.startswith("x-amz-"):
            return False
    return True


def _list_type(target):
    query = target.partition("?")[2]
    return "2" if re.search(r"(^|&)list-type=2(&|$)", query) else "1"


class FaultProxy:
    """Reverse proxy 127.0.0.1:<port> -> upstream_host:upstream_port with injectable faults.

    ``port=0`` (default) picks a free port; ``proxy.port``/``proxy.host``/``proxy.endpoint_url``
    tell where it listens.  ``start()``/``stop()`` or use as a context manager.
    ``upstream_timeout``: seconds to wait for the upstream's bytes before giving up on it.
    ``keep_client_alive``: when the upstream closes after an answer whose length is known
    (moto's werkzeug sends ``Connection: close`` on every response), drop that header and
    keep the client connection open (a new upstream connection serves its next request),
    so clients reuse connections as they would with a real S3 server.  Off by default:
    responses are relayed verbatim.
    """

    def __init__(self, upstream_host, upstream_port, host=HOST, port=0, upstream_timeout=60.0,
                 keep_client_alive=False, tls=None):
        self.upstream = (upstream_host, int(upstream_port))
        self.tls = tls  # a server-side ssl.SSLContext: clients then speak TLS to the proxy
        self.keep_client_alive = keep_client_alive
        self.host = host
        self.port = port
        self.upstream_timeout = upstream_timeout
        self._lock = threading.RLock()
        self._rules = []
        self._log = []
        self._refused = 0
        self._stopping = threading.Event()
        self._listener = None
        self._accept_thread = None
        self._threads = set()
        self._socks = set()
        self._conn_ids = 0

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def endpoint_url(self):
        return "%s://%s:%d" % ("https" if self.tls else "http", self.host, self.port)

    def start(self):
        if self._listener is not None:
            return self
        self._stopping.clear()
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind((self.host, self.port))
        lst.listen(128)
        lst.settimeout(0.1)
        self.port = lst.getsockname()[1]
        self._listener = lst
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True,
                                               name="faultproxy-accept-%d" % self.port)
        self._accept_thread.start()
        return self

    def stop(self, timeout=10.0):
        """Close the listener and every connection, and join all threads."""
        if self._listener is None:
            return
        self._stopping.set()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            socks = list(self._socks)
            threads = list(self._threads)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in threads if t.is_alive()]
        self._listener = None
        self._accept_thread = None
        if alive:
            raise RuntimeError("faultproxy threads did not stop: %s" % ", ".join(alive))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "<FaultProxy %s -> %s:%d>" % (
            self.endpoint_url if self._listener else "stopped", *self.upstream)

    # -- rules ------------------------------------------------------------------------------
    def _add(self, rule):
        with self._lock:
            self._rules.append(rule)
        return rule

    def respond(self, status, body=None, headers=None, times=1, match=None, method=None,
                code=None, message=None, close=False, if_header=None):
        """Answer matching requests with ``status`` without forwarding them.

        ``body`` (bytes/str) defaults to an S3 ``<Error>`` document with ``code`` (default from
        the status: 503/429 SlowDown, 500 InternalError, 404 NoSuchKey, ...), none for HEAD.
        ``headers``: dict or list of pairs, added (Content-Length is computed). ``close``: send
        ``Connection: close`` and close the client connection afterwards.  ``if_header``: see
        the module's docstring.
        """
        if body is None and code is None and status not in S3_ERRORS and status >= 400:
            code = "Error%d" % status
        return self._add(Rule(self, "respond", times, method, match, if_header, status=int(status),
                              body=body, headers=headers, code=code, message=message,
                              close=close))

    def set_headers(self, headers, times=1, match=None, method=None, if_header=None):
        """Forward, and answer with ``headers`` (dict or list of pairs) in the response head in
        place of the upstream's headers of the same names (as a server that states other ones:
        an SSE-C object's ETag and customer-algorithm, say)."""
        if isinstance(headers, dict):
            headers = list(headers.items())
        return self._add(Rule(self, "set_headers", times, method, match, if_header, headers=headers))

    def reset_after(self, nbytes, times=1, match=None, method=None):
        """Forward, then reset (RST) the client connection once ``nbytes`` bytes of the
        response body were sent (0: right after the head; a shorter body is sent whole, then
        reset). ``nbytes=None``: reset without sending any of the response (the upstream did
        process the request). Counted in wire bytes, so chunk framing counts for a chunked
        body (S3 object GETs have a Content-Length)."""
        return self._add(Rule(self, "reset", times, method, match, nbytes=nbytes))

    def stall(self, seconds, after_bytes=0, then="continue", times=1, match=None, method=None):
        """Forward, but send nothing for ``seconds`` once ``after_bytes`` bytes of the body were
        sent (``after_bytes=None``: before the response head). ``then``: "continue" (send the
        rest), "close" (FIN: the client sees a short body) or "reset" (RST)."""
        if then not in ("continue", "close", "reset"):
            raise ValueError("then must be continue, close or reset")
        return self._add(Rule(self, "stall", times, method, match, seconds=float(seconds),
                              after_bytes=after_bytes, then=then))

    def rechunk(self, times=1, match=None, method=None, keep=None, extra=b""):
        """Forward, but send the response body with ``Transfer-Encoding: chunked`` instead of
        its Content-Length, as a server that does not state the size: its first ``keep`` bytes
        (None: all of it), then ``extra``, then a proper end of the body (so the client sees a
        complete answer, shorter or longer than the object). Only for upstream answers with a
        Content-Length (S3 object GETs); the connection is closed after it."""
        return self._add(Rule(self, "rechunk", times, method, match, keep=keep, extra=bytes(extra)))

    def refuse(self, times=1, reset=False):
        """Close the next ``times`` new client connections at once, before reading anything
        (``reset=True``: with RST instead of FIN). Open keep-alive connections are not
        affected; see ``disconnect_all()``."""
        return self._add(Rule(self, "refuse", times, None, None, reset=reset))

    def cut_listing(self, after_keys, times=1, mode="truncate", match=None):
        """Act on ListObjects requests (GET /<bucket>[/][?listing params]; ``match`` narrows).

        mode="truncate": keep the first ``after_keys`` ``<Contents>`` entries of the page, set
        ``<IsTruncated>true</IsTruncated>`` and ``<NextMarker>`` to the last kept ``<Key>`` (as
        written in the XML, so URL-encoded under encoding-type=url), drop CommonPrefixes after
        it; resent with a Content-Length. V1 listings only (a V2 continuation token cannot be
        made up), so V2 requests do not match in this mode. A page with no more than
        ``after_keys`` entries goes through unchanged (the entry's fault says ``:noop``).
        mode="reset": send the page up to the end of the ``after_keys``-th ``</Contents>``
        (half the body if it has fewer) and reset the connection.
        """
        if mode not in ("truncate", "reset"):
            raise ValueError("mode must be truncate or reset")

        def listing(method, target):
            if not _is_listing(method, target):
                return False
            if mode == "truncate" and _list_type(target) == "2":
                return False
            if match is None:
                return True
            return Rule(self, "", None, None, match).matches(method, target)

        return self._add(Rule(self, "cut_listing", times, "GET", listing,
                              after_keys=int(after_keys), mode=mode))

    def clear(self, log=True):
        """Drop all rules (and the log, unless ``log=False``)."""
        with self._lock:
            self._rules = []
            if log:
                self._log = []
                self._refused = 0

    def disconnect_all(self):
        """Close every open client connection (FIN), so clients must reconnect."""
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def rules(self):
        with self._lock:
            return [r for r in self._rules if r.live]

    @property
    def log(self):
        """A snapshot list of LogEntry, oldest first."""
        with self._lock:
            return list(self._log)

    @property
    def refused(self):
        """How many connections refuse() closed."""
        with self._lock:
            return self._refused

    def entries(self, method=None, match=None, fault=None):
        """Log entries filtered like rules (method, substring/regex/callable match) and by
        fault kind (prefix of ``entry.fault``)."""
        probe = Rule(self, "", None, method, match)
        return [e for e in self.log if probe.matches(e.method, e.target)
                and (fault is None or (e.fault or "").startswith(fault))]

    def _take(self, method, target, headers=None):
        with self._lock:
            for rule in self._rules:
                if not rule.live or rule.kind == "refuse" or not rule.matches(method, target, headers):
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                rule.hits += 1
                return rule
        return None

    def _take_refuse(self):
        with self._lock:
            for rule in self._rules:
                if rule.kind == "refuse" and rule.live:
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    rule.hits += 1
                    self._refused += 1
                    return rule
        return None

    # -- connections ------------------------------------------------------------------------
    def _accept_loop(self):
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(0.01)
                continue
            rule = self._take_refuse()
            if rule is not None:
                if rule.params["reset"]:
                    _rst_close(sock)
                else:
                    sock.close()
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conn_ids += 1
                cid = self._conn_ids
                self._socks.add(sock)
                t = threading.Thread(target=self._serve, args=(sock, cid), daemon=True,
                                     name="faultproxy-%d-conn-%d" % (self.port, cid))
                self._threads.add(t)
            t.start()

    def _serve(self, client, cid):
        conn = None
        try:
            if self.tls is not None:
                client = self._handshake(client)
            conn = _Conn(self, client, cid)
            conn.run()
        except (OSError, ValueError):
            pass  # a failed TLS handshake: the client sees the connection close
        finally:
            if conn is not None:
                conn.close()
            else:
                client.close()
            with self._lock:
                self._socks.discard(client)
                self._threads.discard(threading.current_thread())

    def _handshake(self, raw):
        """The client's TLS connection (the raw socket is replaced where stop() finds it)."""
        raw.settimeout(10)
        tls = self.tls.wrap_socket(raw, server_side=True)
        tls.settimeout(None)
        with self._lock:
            self._socks.discard(raw)
            self._socks.add(tls)
        return tls


class _Conn:
    """One client connection and its upstream connection."""

    def __init__(self, proxy, client, cid):
        self.proxy = proxy
        self.client = client
        self.cid = cid
        self.creader = _Reader(client)
        self.up = None
        self.ureader = None
        self.client_closed = False
        self.until_eof = False

    # -- plumbing ---------------------------------------------------------------------------
    def close(self):
        if not self.client_closed:
            self.client_closed = True
            try:
                self.client.close()
            except OSError:
                pass
        self.close_upstream()

    def reset_client(self):
        self.client_closed = True
        _rst_close(self.client)

    def close_upstream(self):
        if self.up is not None:
            with self.proxy._lock:
                self.proxy._socks.discard(self.up)
            try:
                self.up.close()
            except OSError:
                pass
            self.up = self.ureader = None

    def upstream(self):
        if self.up is not None and self.ureader.at_eof_or_data():
            self.close_upstream()  # the server closed the idle connection: open a new one
        if self.up is None:
            s = socket.create_connection(self.proxy.upstream, timeout=self.proxy.upstream_timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.proxy._lock:
                self.proxy._socks.add(s)
            self.up, self.ureader = s, _Reader(s)
        return self.up

    def send_client(self, data, entry=None, body=True):
        if entry is not None and body:
            entry.sent += len(data)  # counted first, so the log is complete when bytes arrive
        self.client.sendall(data)

    def wait(self, seconds):
        if self.proxy._stopping.wait(seconds):
            raise _Aborted("proxy stopping")

    # -- body relays ------------------------------------------------------------------------
    def relay_request_body(self, req, dst):
        """Relay the request body from the client to ``dst`` (None: read and drop it)."""
        def out(data):
            if dst is not None:
                dst.sendall(data)

        if "chunked" in req.tokens("transfer-encoding"):
            while True:
                line = self.creader.readline()
                out(line)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, then the empty line
                        t = self.creader.readline()
                        out(t)
                        if t in (b"\r\n", b"\n"):
                            return
                left = size + 2  # data and its CRLF
                while left:
                    data = self.creader.read_some(min(left, CHUNK))
                    left -= len(data)
                    out(data)
        length = req.get("content-length")
        if length:
            left = int(length)
            while left:
                data = self.creader.read_some(min(left, CHUNK))
                left -= len(data)
                out(data)

    @staticmethod
    def has_body(req):
        return "chunked" in req.tokens("transfer-encoding") or int(
            req.get("content-length") or 0) > 0

    def response_body_chunks(self, method, resp, status):
        """Yield the raw (wire) body bytes of the upstream response; set self.until_eof."""
        self.until_eof = False
        if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
            return
        r = self.ureader
        if "chunked" in resp.tokens("transfer-encoding"):
            while True:
                line = r.readline()
                yield line
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:
                        t = r.readline()
                        yield t
                        if t in (b"\r\n", b"\n"):
                            return
                left = size + 2
                while left:
                    data = r.read_some(min(left, CHUNK))
                    left -= len(data)
                    yield data
        length = resp.get("content-length")
        if length is not None:
            left = int(length)
            while left:
                data = r.read_some(min(left, CHUNK))
                left -= len(data)
                yield data
            return
        self.until_eof = True
        while True:
            try:
                data = r.read_some(CHUNK)
            except _Closed:
                return
            yield data

    @staticmethod
    def decode_chunked(raw):
        out, i = bytearray(), 0
        while True:
            j = raw.index(b"\n", i)
            size = int(raw[i:j].split(b";", 1)[0].strip() or b"0", 16)
            i = j + 1
            if size == 0:
                return bytes(out)
            out += raw[i:i + size]
            i += size + 2

    # -- one connection ---------------------------------------------------------------------
    def run(self):
        try:
            while not self.proxy._stopping.is_set():
                try:
                    req = _read_head(self.creader)
                except _Closed:
                    return
                if not self.exchange(req):
                    return
        except (_Closed, _Aborted, OSError, ValueError):
            return

    def exchange(self, req):
        """Handle one request; False when the client connection must be closed."""
        parts = req.first.split(b" ")
        if len(parts) != 3:
            self.send_client(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
            return False
        method = parts[0].decode("latin-1")
        target = parts[1].decode("latin-1")
        version = parts[2].decode("latin-1")
        entry = LogEntry(self.cid, method, target, version, list(req.headers))
        with self.proxy._lock:
            self.proxy._log.append(entry)
        conn_tokens = req.tokens("connection")
        keep = ("close" not in conn_tokens) if version == "HTTP/1.1" else (
            "keep-alive" in conn_tokens)
        rule = self.proxy._take(method, target, req.headers)
        try:
            if rule is not None and rule.kind == "respond":
                return self.respond(req, entry, rule) and keep
            return self.forward(req, entry, rule, method) and keep
        except (_Closed, OSError) as exc:
            if entry.error is None:
                entry.error = "%s: %s" % (type(exc).__name__, exc)
            raise
        finally:
            entry.finished = time.monotonic()

    def respond(self, req, entry, rule):
        p = rule.params
        entry.fault = "respond"
        expect = "100-continue" in req.tokens("expect")
        close = p["close"] or (expect and self.has_body(req))
        if not (expect and self.has_body(req)):
            self.relay_request_body(req, None)  # keep the connection in step
        status = p["status"]
        body = p["body"]
        if body is None:
            if entry.method == "HEAD" or status < 400:
                body = b""
            else:
                code, message = S3_ERRORS.get(status, (p["code"] or "Error", "Error"))
                body = s3_error_body(p["code"] or code, p["message"] or message,
                                     entry.path)
        elif isinstance(body, str):
            body = body.encode("utf-8")
        extra = p["headers"] or []
        if isinstance(extra, dict):
            extra = list(extra.items())
        names = {k.lower() for k, _ in extra}
        head = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Fault"))]
        if "content-type" not in names and body:
            head.append("Content-Type: application/xml")
        head.append("x-amz-request-id: faultproxy")
        head += ["%s: %s" % (k, v) for k, v in extra if k.lower() != "content-length"]
        head.append("Content-Length: %d" % len(body))
        if close:
            head.append("Connection: close")
        entry.status = status
        entry.resp_headers = [tuple(h.split(": ", 1)) for h in head[1:]]
        if entry.method == "HEAD":
            body = b""
        self.send_client(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"), entry, body=False)
        if body:
            self.send_client(body, entry)
        return not close

    def forward(self, req, entry, rule, method):
        kind = rule.kind if rule is not None else None
        p = rule.params if rule is not None else {}
        if kind is not None:
            entry.fault = kind if kind != "cut_listing" else "cut_listing:" + p["mode"]
        up = self.upstream()
        up.sendall(req.raw())
        expect = "100-continue" in req.tokens("expect") and self.has_body(req)
        body_sent = not self.has_body(req)
        if expect:
            # relay the body once the server says 100 or the client sends it anyway
            r = [self.client] if self.creader.buffered() else select.select(
                [up, self.client], [], [], self.proxy.upstream_timeout)[0]
            if self.client in r:
                self.relay_request_body(req, up)
                body_sent = True
        elif not body_sent:
            self.relay_request_body(req, up)
            body_sent = True

        # response head(s): relay interim 1xx, stop at the final one
        while True:
            resp = _read_head(self.ureader)
            try:
                status = int(resp.first.split(b" ")[1])
            except (IndexError, ValueError):
                raise _Closed("bad status line from upstream: %r" % resp.first)
            if 100 <= status < 200 and status != 101:
                self.send_client(resp.raw())
                if status == 100 and not body_sent:
                    self.relay_request_body(req, up)
                    body_sent = True
                continue
            break
        entry.status = status
        entry.resp_headers = list(resp.headers)
        upstream_close = ("close" in resp.tokens("connection")
                          or resp.first.startswith(b"HTTP/1.0")
                          and "keep-alive" not in resp.tokens("connection"))
        client_close = upstream_close
        if upstream_close and self.proxy.keep_client_alive and body_sent and (
                method == "HEAD" or status in (204, 304) or resp.get("content-length")
                is not None or "chunked" in resp.tokens("transfer-encoding")):
            # the server closes after each answer (moto does): hide that from the client
            resp.lines = [line for line in resp.lines
                          if line.split(b":", 1)[0].strip().lower() != b"connection"]
            client_close = False
        if not body_sent:
            # final answer before the body (e.g. 4xx to Expect): the client may still send
            # it, so this client connection cannot be reused
            upstream_close = client_close = True
        if kind == "stall" and p["after_bytes"] is None:
            ok = self.stall_now(entry, p)
            if not ok:
                return False
        if kind == "reset" and p["nbytes"] is None:
            entry.status = None
            self.close_upstream()
            self.reset_client()
            raise _Aborted("reset before the response")
        if kind == "set_headers":
            names = {name.lower().encode("latin-1") for name, _ in p["headers"]}
            resp.lines = [line for line in resp.lines if line.split(b":", 1)[0].strip().lower() not in names]
            resp.lines += [("%s: %s\r\n" % item).encode("latin-1") for item in p["headers"]]
            entry.resp_headers = [h for h in entry.resp_headers if h[0].lower().encode("latin-1") not in names]
            entry.resp_headers += list(p["headers"])
        if kind == "cut_listing":
            keep = self.cut_listing(method, resp, status, entry, p)
        elif kind == "rechunk" and resp.get("content-length") is not None and method != "HEAD":
            keep = self.rechunk(method, resp, status, entry, p)
        else:
            keep = self.relay_response(method, resp, status, entry, kind, p)
        if upstream_close or self.until_eof or not keep:
            self.close_upstream()
        return keep and not client_close and not self.until_eof

    def stall_now(self, entry, p):
        """Stall; False when the connection was closed (then='close'/'reset')."""
        self.wait(p["seconds"])
        if p["then"] == "close":
            entry.error = "closed after stall"
            self.close_upstream()
            self.close()
            raise _Aborted("closed after stall")
        if p["then"] == "reset":
            entry.error = "reset after stall"
            self.close_upstream()
            self.reset_client()
            raise _Aborted("reset after stall")
        return True

    def relay_response(self, method, resp, status, entry, kind, p):
        self.send_client(resp.raw(), entry, body=False)
        limit = None
        if kind == "reset":
            limit = p["nbytes"]
        elif kind == "stall" and p["after_bytes"] is not None:
            limit = p["after_bytes"]
        done = False  # the fault point was reached
        if limit is not None and limit <= 0:
            done = self.fault_point(entry, kind, p)
        for data in self.response_body_chunks(method, resp, status):
            if limit is not None and not done and entry.sent + len(data) >= limit:
                cut = limit - entry.sent
                if cut:
                    self.send_client(data[:cut], entry)
                done = self.fault_point(entry, kind, p)
                data = data[cut:]
                if not data:
                    continue
            self.send_client(data, entry)
        if limit is not None and not done:
            # the body was shorter than the limit: still apply the fault at its end
            self.fault_point(entry, kind, p)
        return True

    def rechunk(self, method, resp, status, entry, p):
        """Relay ``resp`` with its body re-framed as chunked (see FaultProxy.rechunk); False:
        the connections are closed after it."""
        resp.lines = [line for line in resp.lines
                      if line.split(b":", 1)[0].strip().lower() not in (b"content-length", b"connection")]
        resp.lines += [b"Transfer-Encoding: chunked\r\n", b"Connection: close\r\n"]
        entry.resp_headers = list(resp.headers) + [("Transfer-Encoding", "chunked")]
        self.send_client(resp.raw(), entry, body=False)
        left = p["keep"]
        for data in self.response_body_chunks(method, resp, status):
            if left is not None:
                data = data[:left]
                left -= len(data)
            if data:
                self.send_client(b"%x\r\n" % len(data) + data + b"\r\n", entry)
            if left == 0:
                break
        if p["extra"]:
            self.send_client(b"%x\r\n" % len(p["extra"]) + p["extra"] + b"\r\n", entry)
        self.send_client(b"0\r\n\r\n", entry)
        return False

    def fault_point(self, entry, kind, p):
        if kind == "reset":
            self.close_upstream()
            self.reset_client()
            raise _Aborted("reset after %d bytes" % entry.sent)
        self.stall_now(entry, p)
        return True

    def cut_listing(self, method, resp, status, entry, p):
        raw = b"".join(self.response_body_chunks(method, resp, status))
        chunked = "chunked" in resp.tokens("transfer-encoding")
        body = self.decode_chunked(raw) if chunked else raw
        if (status != 200 or resp.get("content-encoding") or b"<ListBucketResult" not in body):
            entry.fault = "cut_listing:noop"
            self.send_client(resp.raw(), entry, body=False)
            if raw:
                self.send_client(raw, entry)
            return True
        k = p["after_keys"]
        ends = [m.end() for m in re.finditer(rb"</Contents>", body)]
        if p["mode"] == "reset":
            lines = self.reframe(resp, len(body))
            if k == 0:
                cut = body.find(b"<Contents>")
                cut = cut if cut >= 0 else len(body) // 2
            else:
                cut = ends[k - 1] if k <= len(ends) else len(body) // 2
            self.send_client(resp.raw(lines=lines), entry, body=False)
            if cut:
                self.send_client(body[:cut], entry)
            self.close_upstream()
            self.reset_client()
            raise _Aborted("listing reset after %d bytes" % cut)
        if k >= len(ends):
            entry.fault = "cut_listing:noop"
            new = body
        else:
            new = self.truncate_listing(body, k)
        lines = self.reframe(resp, len(new))
        self.send_client(resp.raw(lines=lines), entry, body=False)
        if new:
            self.send_client(new, entry)
        return True

    @staticmethod
    def reframe(resp, length):
        lines = [line for line in resp.lines
                 if line.split(b":", 1)[0].strip().lower() not in (b"transfer-encoding",
                                                                   b"content-length")]
        return lines + [b"Content-Length: %d\r\n" % length]

    @staticmethod
    def truncate_listing(body, k):
        blocks = list(re.finditer(rb"<Contents>.*?</Contents>", body, re.S))
        kept = blocks[k - 1] if k > 0 else None
        last_key = b""
        if kept is not None:
            m = re.search(rb"<Key>(.*?)</Key>", kept.group(0), re.S)
            last_key = m.group(1) if m else b""
        encoded = re.search(rb"<EncodingType>\s*url\s*</EncodingType>", body, re.I) is not None

        def plain(xml_text):
            t = xml_text.decode("utf-8")
            t = re.sub(r"&#x([0-9a-fA-F]+);", lambda m: chr(int(m.group(1), 16)), t)
            t = re.sub(r"&#([0-9]+);", lambda m: chr(int(m.group(1))), t)
            t = (t.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
                 .replace("&apos;", "'").replace("&amp;", "&"))
            return unquote_plus(t) if encoded else t

        last_plain = plain(last_key) if kept is not None else ""

        def drop_prefix(m):
            pm = re.search(rb"<Prefix>(.*?)</Prefix>", m.group(0), re.S)
            if pm is None or kept is None or plain(pm.group(1)) > last_plain:
                return b""
            return m.group(0)

        # remove the Contents after the k-th, from the end so offsets stay valid
        out = body
        for b in reversed(blocks[k:]):
            out = out[:b.start()] + out[b.end():]
        out = re.sub(rb"<CommonPrefixes>.*?</CommonPrefixes>", drop_prefix, out, flags=re.S)
        if re.search(rb"<IsTruncated>.*?</IsTruncated>", out, re.S):
            out = re.sub(rb"<IsTruncated>.*?</IsTruncated>", b"<IsTruncated>true</IsTruncated>",
                         out, count=1, flags=re.S)
        else:
            out = out.replace(b"</ListBucketResult>",
                              b"<IsTruncated>true</IsTruncated></ListBucketResult>", 1)
        marker = b"<NextMarker>" + last_key + b"</NextMarker>"
        if re.search(rb"<NextMarker>.*?</NextMarker>|<NextMarker/>", out, re.S):
            out = re.sub(rb"<NextMarker>.*?</NextMarker>|<NextMarker/>", lambda _: marker, out,
                         count=1, flags=re.S)
        else:
            out = re.sub(rb"(</IsTruncated>)", lambda m: m.group(1) + marker, out, count=1)
        return out
