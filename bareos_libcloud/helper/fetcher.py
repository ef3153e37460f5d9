"""A fetch helper: one process with many downloads in flight (runs outside bareos-fd).

The job gives each fetch helper up to ``slots`` downloads at once (``("get", seq, ...)``, see
protocol.py for the messages).  Small whole objects of the S3 family go to libcurl's multi
interface (curlfetch.py): one thread, every transfer in flight at once, HTTP parsed in C, each
GET signed by libcloud.  Everything else (streams, resumes, SSE-C, providers outside the S3
family, and any GET the curl path did not settle with a clean 200) runs on threads of this
process, each with its own libcloud driver, through fetch.read_object: the one place that holds
the integrity rules (resume with If-Match, byte count, MD5, the withheld last piece).

All threads write to the one pipe through an :class:`Outbox` (a message and its raw bytes go out
together).  A stream sends a chunk only with a credit from the job (``("more", seq, n)``):
otherwise a stream Bareos is not reading yet would fill the pipe that the other downloads share.
"""

import os
import pickle
import queue
import select
import threading

from ..protocol import WINDOW, send_raw
from ..retry import RETRIED, RetryPolicy
from . import driver as driver_mod
from . import fetch

#: Times an object is read again from the start when it changed while it was read, its bytes did
#: not match its MD5, or its transfer broke where it cannot resume, before any byte went to the job.
REREADS = 2


class Dropped(Exception):
    """The job cancelled this download (``("cancel", seq)``): stop sending it."""


class Outbox:
    """The helper's end of its pipe, shared by its threads."""

    def __init__(self, conn, secrets=()):
        self.conn = conn
        self.fd = conn.fileno()
        self.lock = threading.Lock()
        self.secrets = tuple(secrets)

    def send(self, message, payload=None):
        """Send ``message`` and then, as raw bytes, ``payload`` (bytes or a list of them)."""
        data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)  # what Connection.send does, without its
        with self.lock:                                        # ForkingPickler (4 us a message more)
            self.conn.send_bytes(data)
            if payload is not None:
                for part in payload if isinstance(payload, list) else (payload,):
                    send_raw(self.fd, part)

    def scrub(self, text):
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def retry_policy(self, config):
        """A RetryPolicy whose retries and resumes go to the job ("retried"/"resumed", text): it
        counts them for its summary."""
        return RetryPolicy(config.get("retries", 5), config.get("retry_max_wait", 30.0),
                           count=lambda kind, text: self.send((kind, self.scrub(text))))


class Credits:
    """The chunks each stream may still send; a cancel wakes a stream waiting for one."""

    def __init__(self):
        self.cond = threading.Condition()
        self.left = {}
        self.dropped = set()

    def open(self, seq):
        with self.cond:
            self.left[seq] = WINDOW

    def grant(self, seq, count):
        with self.cond:
            if seq in self.left:
                self.left[seq] += count
                self.cond.notify_all()

    def take(self, seq):
        """Wait for a credit of ``seq``; raises Dropped once it is cancelled."""
        with self.cond:
            while self.left.get(seq, 0) <= 0 and seq not in self.dropped:
                self.cond.wait()
            if seq in self.dropped:
                raise Dropped()
            self.left[seq] -= 1

    def drop(self, seq):
        with self.cond:
            self.dropped.add(seq)
            self.cond.notify_all()

    def is_dropped(self, seq):
        with self.cond:
            return seq in self.dropped

    def close(self, seq):
        with self.cond:
            self.left.pop(seq, None)
            self.dropped.discard(seq)


class Channel:
    """What one download sends: messages, chunks under the stream's credits."""

    def __init__(self, outbox, credits, seq):
        self.outbox, self.credits, self.seq = outbox, credits, seq

    def send(self, message, payload=None):
        if self.credits.is_dropped(self.seq):
            raise Dropped()
        self.outbox.send(message, payload)

    def begin(self, message):
        self.credits.open(self.seq)
        self.send(message)

    def data(self, chunk):
        self.credits.take(self.seq)
        self.outbox.send(("data", self.seq, len(chunk)), chunk)


def send_object(channel, drv, retry, request):
    """Send one object, reading it again from the start if it changed before any byte went out."""
    for attempt in range(REREADS + 1):
        try:
            outcome = _try_send_object(channel, drv, retry, request, last=attempt == REREADS)
        except Dropped:
            return
        if outcome != "again":
            return


def _too_big(stream, held, limit):
    known = stream.size if stream.size is not None and stream.size >= 0 else None
    return (known is not None and known > limit) or held > limit


def _try_send_object(out, drv, retry, request, last):
    _, seq, bucket, key, listed, inline_limit, start, etag = request
    parts, held, began = [], 0, False
    # A stream's newest chunk waits for the next one, and the last one until read_object has
    # checked size and MD5: bareos-fd catalogs a failed read with the object's full size
    # (real-fd-trace 7), so a bad copy must come out short of it, where a restore sees it.
    withheld = None
    announced, total = None, start
    try:
        for stream, chunk in fetch.read_object(drv, bucket, key, listed, retry, start, etag):
            total += len(chunk)
            if not began and (start > 0 or _too_big(stream, held + len(chunk), inline_limit)):
                announced = stream.size if stream.size is not None and stream.size >= 0 else None
                out.begin(("begin", seq, key, announced, stream.mtime, stream.etag, stream.meta))
                began = True
                withheld = parts.pop() if parts else None
                for part in parts:
                    out.data(part)
                parts = []
            if not chunk:
                continue
            if began:
                if withheld is not None:
                    out.data(withheld)
                withheld = chunk
            else:
                parts.append(chunk)
                held += len(chunk)
    except fetch.ObjectVanished:
        out.send(("error", seq, "the object was deleted while it was read") if began else ("vanished", seq))
        return "done"
    except (fetch.ObjectChanged, fetch.CorruptRead, fetch.BrokenTransfer) as exc:
        if not began and not last:
            retry.note(RETRIED, "reading %r again from the start: %s" % (key, exc))
            return "again"
        out.send(("error", seq, str(exc)))
        return "done"
    except fetch.FetchError as exc:
        out.send(("error", seq, str(exc)))
        return "done"
    if began:
        if announced is None and total < (listed.get("size") or 0):
            # No size from the GET (outside the S3 family): Bareos catalogs the listed one.
            out.send(("error", seq, "the object changed while it was read: %d bytes, %d listed"
                      % (total, listed["size"])))
            return "done"
        if withheld is not None:
            out.data(withheld)
        out.send(("end", seq, stream.meta))
    else:
        out.send(("object", seq, key, held, stream.mtime, stream.etag, stream.meta, held), parts)
        if held > 1024 * 1024:
            parts.clear()
            give_back_memory()
    return "done"


def give_back_memory():
    """Return freed heap memory to the system (malloc keeps large freed buffers resident)."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


class ThreadPath:
    """Downloads on threads of this process, each thread with its own driver (a libcloud
    connection is not thread-safe); a thread is started when every one is busy."""

    def __init__(self, config, outbox, credits):
        self.config, self.outbox, self.credits = config, outbox, credits
        self.spare_driver = None
        self.requests = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.threads = []
        self.idle = 0

    def add(self, request, after=None):
        """Run ``request``; ``after``: a transient failure its first GET met (the curl path's),
        so the retry policy waits and counts before this one."""
        with self.lock:
            if self.idle == 0:
                thread = threading.Thread(target=self._serve, name="libcloud-fetch", daemon=True)
                self.threads.append(thread)
                self.idle += 1
                thread.start()
            self.idle -= 1
        self.requests.put((request, after))

    def _driver(self):
        with self.lock:
            drv, self.spare_driver = self.spare_driver, None
        if drv is None:
            drv = driver_mod.make_driver(self.config["provider"], self.config["driver_kwargs"],
                                         self.config["timeout"], self.config.get("ca_file"))
        return drv

    def _confirm_vanished(self, drv, request):
        """A GET of the curl path was answered 404: a HEAD tells whether the object is gone."""
        _, seq, bucket, key = request[:4]
        error = fetch.confirm_vanished(drv, bucket, key)
        self.outbox.send(("vanished", seq) if isinstance(error, fetch.ObjectVanished) else ("error", seq, str(error)))

    def _serve(self):
        drv = None
        retry = self.outbox.retry_policy(self.config)
        while True:
            request, after = self.requests.get()
            seq = request[1]
            try:
                if drv is None:
                    drv = self._driver()  # here: a failure fails this object, named, not the thread
                if self.credits.is_dropped(seq):
                    pass
                elif request[0] == "confirm-vanished":
                    self._confirm_vanished(drv, request)
                elif after is not None and not retry.start(request[3]).retry(fetch.Transient(after)):
                    self.outbox.send(("error", seq, self.outbox.scrub("%s (gave up after 1 attempt)" % after)))
                else:
                    send_object(Channel(self.outbox, self.credits, seq), drv, retry, request)
            except (BrokenPipeError, EOFError, OSError):
                return  # the job went away
            except Exception as exc:  # noqa: BLE001 - this object fails, the others go on
                text = "reading the object failed: %s: %s" % (type(exc).__name__, exc)
                try:
                    self.outbox.send(("error", seq, self.outbox.scrub(text)))
                except OSError:
                    return
            finally:
                self.credits.close(seq)
                with self.lock:
                    self.idle += 1


def _curl_path(drv, config, outbox, fallback):
    """The curl path for this driver, or None (outside the S3 family, a proxy, SSE-C, or no
    pycurl: everything then goes through the threads)."""
    if not driver_mod.uses_lean_transport(drv) or fetch.customer_key_of(drv) is not None:
        return None
    try:
        from .curlfetch import CurlPath
    except ImportError:
        return None
    return CurlPath(drv, config, outbox, fallback)


def _on_curl(curl, request, outbox):
    """Start ``request`` on the curl path; False leaves it to the threads (not a case for curl, or
    curl could not start it: the thread path then meets the same problem and names it)."""
    try:
        return curl.add(request)
    except Exception as exc:  # noqa: BLE001 - one object's problem, not the helper's
        outbox.send(("debug", outbox.scrub("the curl path could not start %r (%s: %s); it goes through a thread"
                                           % (request[3], type(exc).__name__, exc))))
        return False


def serve(conn, drv, config):
    """The fetch helper's loop: take the job's messages, move the curl transfers along."""
    outbox = Outbox(conn, config.get("secrets", ()))
    credits = Credits()
    threads = ThreadPath(config, outbox, credits)
    curl = _curl_path(drv, config, outbox, threads.add)
    if curl is None:
        threads.spare_driver = drv  # else it is the curl path's: a libcloud driver serves one thread
    outbox.send(("started", os.getpid()))
    fd = conn.fileno()
    pipe = select.poll()
    pipe.register(fd, select.POLLIN)
    while True:
        if curl is not None and curl.busy():
            readable, writable, failed, timeout = curl.wait_set()
            ready = select.select(readable + [fd], writable, failed, timeout)[0]
            job_spoke = fd in ready
        else:
            job_spoke = True  # nothing else to wait for: block in recv
        while job_spoke:
            message = conn.recv()
            kind = message[0]
            if kind == "get":
                if curl is None or not _on_curl(curl, message, outbox):
                    threads.add(message)
            elif kind == "more":
                credits.grant(message[1], message[2])
            elif kind == "cancel":
                if curl is None or not curl.cancel(message[1]):
                    credits.drop(message[1])  # a thread's download (or one already done)
            else:  # "stop"
                return
            job_spoke = bool(pipe.poll(0))
        if curl is not None:
            curl.step()
