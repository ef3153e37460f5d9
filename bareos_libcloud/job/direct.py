"""Direct streams: the job thread reads a large object straight from the object store.

A fetch helper in between would add a process and two copies of every byte (socket to helper, helper
to pipe, pipe to job); on a 2-core machine serving its own object store that pipeline ran at a
third of one plain GET (performance-sample.md).  So for the S3 family, an object Bareos reads in
pieces is fetched by the job itself with ``http.client`` (stdlib only, as the job side must be):
a helper process, the **signer**, has libcloud build and sign each GET (transport.signed_get),
and the job sends it.  The job holds one 256 KiB piece of the object at a time.

Everything the fetch helpers guarantee holds here too: a broken transfer resumes from the byte
reached with ``Range`` and ``If-Match`` (same ETag), up to ``retries`` times; the byte count must
equal the announced size, and a plain-MD5 ETag must match the bytes.  A stalled server ends a
read after ``timeout`` seconds (the socket's timeout), and a cancel shuts the socket down from
the cancelling thread, so the job thread never waits long.

``http.client`` (with ssl and email) is imported where a direct stream first needs it, not at load:
every job's interpreter loads the plugin afresh, and many jobs have no large object.
"""

import hashlib
import queue
import socket
import threading
import time

from .. import answers, metadata
from ..protocol import signer_main
from ..retry import RESUMED, RETRIED, Transient
from .helpers import Helper, HelperStartError
from .prefetch import ENDED, FAILED, QUEUED, STREAMING, VANISHED, JobCancelled

#: Seconds the signer may take to start (a fresh interpreter importing libcloud) or to answer.
SIGNER_SECONDS = 60
#: Signing processes one job may start: the first and a few to replace one that died, did not
#: answer in time or answered another request (then large objects go through the fetch helpers).
SIGNER_STARTS = 4
#: Bytes of an error answer read for its S3 error document (answers.error_of).
ERROR_DOCUMENT_BYTES = 64 * 1024


class SignerLost(answers.FetchError):
    """The signing process died, did not answer in time or answered another request: it was
    ended (never asked again); Signer.usable() starts another while the job may."""


class Signer:
    """The signing helper process; ``available`` is False when direct streams cannot be used.

    Every request carries an id that its answer must name (protocol.py).  A signer that does not
    answer within SIGNER_SECONDS or answers with another id is killed at once: a late answer
    to one object's request must never be taken for the next object's (its bytes would be saved
    under the other name, and every check would pass).
    """

    def __init__(self, config, python, cancelled):
        self.config = config
        self.python = python
        self.cancelled = cancelled
        self.helper = None
        self.available = True
        self.why_not = None
        self.starts = 0
        self.last_id = 0
        self.lost = None  # why the last signer was ended
        # whether a GET brings the SSE-C key (what worked last), and the buckets that answered
        # from another region: told to every signer, so a new one signs for them at once
        self.key_choice = answers.KeyChoice(getattr(config["driver_kwargs"], "customer_key", None) is not None)
        self.regions = {}

    def _call(self, message=None):
        """The next answer (not a debug line); SignerLost (the signer ended) when none comes."""
        helper = self.helper
        try:
            if message is not None:
                helper.send(message)
            seconds = SIGNER_SECONDS
            deadline = time.monotonic() + seconds
            while not helper.ready(0.2):
                if self.cancelled.is_set():
                    raise JobCancelled()
                if not helper.process.is_alive():
                    raise SignerLost("the signing process ended")
                if time.monotonic() > deadline:
                    raise SignerLost("the signing process did not answer within %d s" % seconds)
            while True:
                reply = helper.conn.recv()
                if reply[0] != "debug":
                    return reply
        except (EOFError, OSError) as exc:
            raise self._discard("the signing process ended (%s)" % (type(exc).__name__,)) from None
        except SignerLost as exc:
            raise self._discard(str(exc)) from None

    def _discard(self, why):
        """End the signer for good; the SignerLost to raise."""
        if self.helper is not None:
            self.helper.kill()
            self.helper = None
        self.lost = why
        return SignerLost(why)

    def _start(self):
        self.starts += 1
        try:
            self.helper = Helper("bareos-libcloud-signer", signer_main, self.config, self.python, self.cancelled)
        except HelperStartError as exc:
            self.available, self.why_not = False, str(exc)
            return
        try:
            reply = self._call()
        except SignerLost as exc:  # one that cannot start is not started again (each try may take a minute)
            reply = ("unsupported", "the signing process did not start: %s" % exc)
        if reply[0] != "ready":
            self.available, self.why_not = False, reply[1]
            self.stop()

    def usable(self):
        """Start the signer if needed (again, if the last one was ended, a few times per job);
        False when large objects must go through the fetch helpers."""
        if self.helper is not None and not self.helper.process.is_alive():
            self._discard("the signing process ended")
        if self.available and self.helper is None:
            if self.config["driver_kwargs"].get("secure", True) and not _ssl_works():
                self.available, self.why_not = False, "the ssl module cannot be imported in this interpreter"
                return False
            while self.available and self.helper is None:
                if self.starts >= SIGNER_STARTS:
                    self.available = False
                    self.why_not = "%d signing processes were started and ended (%s)" % (self.starts, self.lost)
                    break
                self._start()
        return self.available

    def sign(self, bucket, key, start, etag, with_key=False):
        """The signed request (a dict, see transport.signed_get) of a GET from byte ``start``
        (``etag``: If-Match; ``with_key``: with the SSE-C key's headers).  SignerLost when the
        signer had to be ended; FetchError when it could not sign."""
        if self.helper is None and not self.usable():
            raise SignerLost(self.why_not or "no signing process")
        return self._ask("signed", ("sign", bucket, key, start, etag, with_key, self.regions.get(bucket)))

    def tags(self, bucket, key):
        """The object's tags, [(key, value)] (the signer asks the store: GetObjectTagging)."""
        if self.helper is None and not self.usable():
            raise SignerLost(self.why_not or "no signing process")
        return self._ask("tags", ("tags", bucket, key, self.regions.get(bucket)))

    def _ask(self, answer, request):
        self.last_id += 1
        ident = self.last_id
        reply = self._call((request[0], ident) + request[1:])
        if len(reply) < 3 or reply[1] != ident:
            raise self._discard("the signing process answered another request (%r, expected %d)"
                                % (reply[:2], ident))
        if reply[0] != answer:
            raise answers.FetchError(reply[2])
        return reply[2]

    def stop(self):
        """End the signer (the job ends, or direct streams cannot be used): none is started again."""
        self.available = False
        if self.helper is not None:
            self.helper.stop(grace=0.5)
            self.helper = None


def _ssl_works():
    try:
        import ssl  # noqa: F401 - a stdlib extension; checked once, before it is needed
    except ImportError:
        return False
    return True


def _connect(request, timeout):
    import http.client

    if not request["secure"]:
        return http.client.HTTPConnection(request["host"], request["port"], timeout=timeout)
    import ssl

    if request["verify"]:
        context = ssl.create_default_context(cafile=request["cafile"])
    else:
        context = ssl._create_unverified_context()  # the admin turned verification off
    return http.client.HTTPSConnection(request["host"], request["port"], timeout=timeout, context=context)


class Hasher:
    """MD5 of a stream on a thread of its own, beside the job thread (hashlib lets go of the GIL).

    On the job thread the check cost about 2 s of CPU per GiB, in series with Bareos's own work.
    At most ``depth`` chunks wait; ``hexdigest`` and ``stop`` join the thread, so none outlives the
    object (a thread alive at job end aborts bareos-fd, real-fd-trace 8c).
    """

    def __init__(self, depth=4):
        self.md5 = hashlib.md5()
        self.chunks = queue.Queue(maxsize=depth)
        self.thread = threading.Thread(target=self._run, name="bareos-libcloud-md5", daemon=False)
        self.thread.start()

    def _run(self):
        while True:
            chunk = self.chunks.get()
            if chunk is None:
                return
            self.md5.update(chunk)

    def update(self, chunk):
        self.chunks.put(chunk)

    def stop(self):
        if self.thread.is_alive():
            self.chunks.put(None)
            self.thread.join()

    def hexdigest(self):
        self.stop()
        return self.md5.hexdigest()


class DirectDownload:
    """One large object read by the job thread, with prefetch.Download's interface.

    ``listed_size``: the size Bareos is told when the GET does not state one (no
    Content-Length); the bytes must then add up to it.  ``if_match``: read only this version
    (Bareos has its listed attributes already, BackupSession.open_on_demand).
    """

    def __init__(self, bucket, key, signer, retry, timeout, cancelled, listed_size=None, if_match=None):
        self.bucket, self.key = bucket, key
        self.signer, self.retry, self.timeout, self.cancelled = signer, retry, timeout, cancelled
        self.listed_size, self.if_match = listed_size, if_match
        self.state = QUEUED
        self.size = self.mtime = self.etag = self.error = None
        self.meta, self.tagged = (), False  # metadata.py's pairs; the GET says it has tags
        self.size_listed = False  # the GET did not state the size: the listed one stands for it
        self.signer_lost = False  # failed because no signer could sign: the fetch helpers may read it
        self.checked = False  # _last_piece_problem ran
        self.received = 0
        self.data = None  # never held whole
        self.digest = None
        self.conn = self.response = None
        self.with_key = False  # the GETs bring the SSE-C key (answers.KeyChoice)

    # -- opening -----------------------------------------------------------------------------
    def _sign(self, start):
        """The signed GET from ``start``; a signer that was lost is replaced while the job may."""
        while True:
            try:
                return self.signer.sign(self.bucket, self.key, start, self.etag if start else self.if_match,
                                        self.with_key)
            except SignerLost as exc:
                if not self.signer.usable():
                    self.signer_lost = True
                    raise answers.FetchError("no signing process: %s" % (self.signer.why_not or exc)) from None
                self.retry.note(RETRIED, "signing the GET of %r again in a new signing process: %s" % (self.key, exc))

    def _request(self, start):
        """Send the GET from ``start``; returns what answers.describe makes of the answer."""
        self._disconnect()
        request = self._sign(start)
        self.conn = _connect(request, self.timeout)
        try:
            self.conn.request(request["method"], request["target"], headers=request["headers"])
            self.response = self.conn.getresponse()
            headers = {name.lower(): value for name, value in self.response.getheaders()}
            if start == 0:
                self.meta = metadata.from_headers(headers)
                self.tagged = metadata.tag_count(headers) > 0
            return answers.describe(self.response.status, headers, start, self.key,
                                  lambda: self.response.read(ERROR_DOCUMENT_BYTES), sent_key=self.with_key)
        except BaseException:
            self._disconnect()
            raise

    def open(self):
        """Learn the object's attributes from the GET's headers (Bareos waits for them)."""
        import http.client

        attempts = self.retry.start(self.key)
        tries = self.signer.key_choice.start()
        followed = False
        while True:
            self._check_cancel()
            self.with_key = tries.with_key
            try:
                self.size, self.mtime, self.etag, checkable = self._request(0)
                tries.worked()
                break
            except answers.ObjectVanished:
                self.state = VANISHED
                return
            except (OSError, http.client.HTTPException, Transient) as exc:
                self._check_cancel()
                error = answers.translate(exc, self.key)
                if not attempts.retry(error):
                    return self._fail("%s (gave up after %d attempts)" % (error, attempts.made))
            except answers.OtherRegion as exc:
                if followed:  # the signer signed for that region already
                    return self._fail("bucket %r answered from region %s that it is elsewhere too (%s)"
                                      % (self.bucket, self.signer.regions.get(self.bucket), exc))
                self.signer.regions[self.bucket] = exc.region
                followed = True
            except answers.FetchError as exc:
                try:
                    if tries.switch(exc):
                        continue
                except answers.FetchError as reason:
                    exc = reason
                return self._fail(str(exc))
        if self.size < 0 and self.listed_size is not None:
            self.size, self.size_listed = self.listed_size, True
        if self.tagged:
            try:
                self.meta = metadata.with_tags(self.meta, self.signer.tags(self.bucket, self.key))
            except (answers.FetchError, SignerLost) as exc:
                self._disconnect()
                return self._fail("its tags could not be read: %s" % exc)
        self.digest = Hasher() if checkable else None
        self.state = STREAMING

    # -- reading -----------------------------------------------------------------------------
    def next_chunk(self):
        """The next piece (a bytearray of up to 256 KiB), b"" at the end, None if it failed."""
        import http.client

        if self.state == ENDED:
            return b""
        if self.state != STREAMING:
            return None
        resumes = self.retry.start(self.key)
        while True:
            self._check_cancel()
            try:
                if self.response is None:
                    self._resume()
                chunk = self._read()
                break
            except answers.ObjectVanished:
                return self._fail("the object was deleted while it was read")
            except (OSError, http.client.HTTPException, Transient) as exc:
                self._disconnect()
                self._check_cancel()
                error = answers.translate(exc, self.key)
                if not self.etag or not resumes.retry(error, RESUMED):
                    return self._fail("the transfer broke after %d bytes: %s" % (self.received, error))
            except answers.FetchError as exc:
                return self._fail(str(exc))
        if chunk:
            if self.received == self.size:
                problem = self._last_piece_problem()
                if problem:
                    return self._fail(problem)  # the last piece is withheld: see _last_piece_problem
            return chunk
        return self._finish()

    def _last_piece_problem(self):
        """What is wrong with the object, checked before its last piece goes to Bareos: bareos-fd
        catalogs an object whose read failed anyway, with its full size (real-fd-trace 7), so
        a copy with wrong bytes must come out short of that size, where a restore sees it
        (restore.py).  None when the object is fine."""
        self.checked = True
        if self.size_listed and self._more_follows():
            return ("the object store sent more than the %d bytes listed (its answer stated no size)"
                    % self.size)
        if self.digest is not None:
            return answers.wrong_md5(self.digest.hexdigest(), self.etag)
        return None

    def _more_follows(self):
        """Whether a body that stated no length goes on past the listed size (or breaks there)."""
        import http.client

        try:
            return bool(self.response.read(1))
        except (OSError, http.client.HTTPException):
            return True  # cannot tell whether more would have come: not a copy to rely on


    def _read(self):
        known = self.size is not None and self.size >= 0
        if known and self.received >= self.size:
            return b""
        chunk = bytearray(min(answers.CHUNK_SIZE, self.size - self.received) if known else answers.CHUNK_SIZE)
        got = self.response.readinto(chunk)
        if not got:
            if known:
                import http.client

                raise http.client.IncompleteRead(b"", self.size - self.received)
            self.size = self.received
            return b""
        if got < len(chunk):
            del chunk[got:]
        self.received += got
        if self.digest is not None:
            self.digest.update(chunk)
        return chunk

    def _resume(self):
        size, _, etag, _ = self._request(self.received)
        if etag and etag != self.etag:
            raise answers.ObjectChanged("the object changed while it was read")
        if size >= 0 and size != self.size:
            raise answers.ObjectChanged("the object's size changed while it was read")

    def _finish(self):
        problem = None if self.checked else self._last_piece_problem()
        self._disconnect()
        if problem:
            return self._fail(problem)
        self.state = ENDED
        return b""

    def _fail(self, text):
        self.close()
        self.error = text
        self.state = FAILED
        return None

    def _check_cancel(self):
        if self.cancelled.is_set():
            self.close()
            raise JobCancelled()

    # -- ending ------------------------------------------------------------------------------
    def abort(self):
        """From the cancelling thread: make a blocked read on the job thread return at once."""
        conn = self.conn
        sock = getattr(conn, "sock", None) if conn is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        """Let go of everything: the connection and the MD5 thread (the object is done with)."""
        if self.digest is not None:
            self.digest.stop()
        self._disconnect()

    def _disconnect(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
        self.conn = self.response = None
