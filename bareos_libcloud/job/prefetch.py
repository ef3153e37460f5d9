"""Prefetching: fetch helpers download objects ahead of Bareos, many at a time each.

The job thread drives everything (there are no threads in the job's interpreter): every Bareos
callback calls :meth:`PrefetchPool.pump`, which hands queued downloads to helpers with a free
slot (``slots`` transfers each, fetcher.py) and collects finished ones.  Downloads are kept in listing order; at most ``queue_size`` of them and
about ``memory_budget`` bytes are held at a time.  An object larger than ``inline_limit`` is not
held: its helper sends it chunk by chunk, only while Bareos reads it.  So what the job and its
helpers hold for objects stays within ``memory_budget``, plus the one object Bareos waits for and
at most GROWTH_SLACK per helper for objects that grew after the listing.

A helper that dies or stalls loses nothing: its downloads are queued again, and a stream that had
begun continues from the byte reached (same ETag) in another helper.  So does a helper that
answers for a download it was not given, or names another key than the download's (protocol.py:
every answer names its ``seq``): it is killed, never asked again.  A stream sends a chunk only
for a credit (``("more", seq, 1)`` for each chunk the job takes), so a stream Bareos is not
reading yet cannot fill the pipe its helper's other downloads share.
"""

import collections
import select
import time

from ..answers import ChangedSinceListed
from ..protocol import WINDOW, fetcher_main, receive_raw
from ..retry import RESUMED, RETRIED, FaultCounts
from .helpers import Helper, HelperStartError, stop_all

QUEUED, RUNNING, COMPLETE, STREAMING, ENDED, VANISHED, FAILED = range(7)
MAX_RESTARTS = 3
#: Bytes a helper may hold beyond an object's listed size before it streams it instead.
GROWTH_SLACK = 256 * 1024
#: Messages pump takes from one helper's pipe at a time, at most.
DRAIN = 32
#: Downloads one fetch helper runs at once, at most (more transfers: more helpers).
SLOTS_PER_HELPER = 64
#: What a stream holds at most: WINDOW chunks in the job (or the pipe), one being read, two in its
#: helper (it withholds the newest until the next is read, see fetcher._try_send_object).
STREAM_HOLD = (WINDOW + 3) * 256 * 1024


class JobCancelled(Exception):
    """The job was cancelled while the job thread waited."""


class PoolFailed(Exception):
    """No helper process could be started (the message says why)."""


class Download:
    """One object's transfer through the fetch helpers, as the job sees it.

    The interface every download of the job has (direct.DirectDownload too): ``open()`` waits
    until its attributes are known or it failed; then ``state``, ``size``, ``mtime``, ``etag``,
    ``meta`` (metadata.py's pairs), ``error``, ``data`` (the whole object, when COMPLETE); ``next_chunk()`` gives a stream's next
    chunk (b"" at its end, None if it broke); ``close()`` lets it go; ``abort()``, from another
    thread, unblocks a wait; ``signer_lost``: it failed only for want of a signature.
    """

    __slots__ = (
        "pool", "seq", "bucket", "key", "listed", "if_match", "state", "helper", "data", "chunks", "received",
        "size", "mtime", "etag", "meta", "error", "reserved", "last_heard", "restarts",
    )
    signer_lost = False

    def __init__(self, pool, seq, bucket, key, listed, if_match=None):
        self.pool = pool
        self.seq = seq
        self.bucket = bucket
        self.key = key
        self.listed = listed  # {"size", "mtime", "etag"} from the listing
        self.if_match = if_match  # read only this version (Bareos has its listed attributes)
        self.state = QUEUED
        self.helper = None
        self.data = None  # the whole object when COMPLETE
        self.chunks = collections.deque()  # stream chunks not yet read
        self.received = 0  # stream bytes received so far (where a resume starts)
        self.size = self.mtime = self.etag = self.error = None
        self.meta = ()
        self.reserved = 0
        self.last_heard = 0.0
        self.restarts = 0

    @property
    def settled(self):
        """True once the attributes are known (or it failed)."""
        return self.state not in (QUEUED, RUNNING)

    def open(self):
        self.pool.wait_settled(self)

    def next_chunk(self):
        return self.pool.read(self)

    def close(self):
        self.pool.release(self)

    def abort(self):
        """Nothing to unblock: the pool's waits look for the cancel every 0.2 s."""


def changed_since_listed(download, size, etag):
    """For an object whose listed ``size`` and ``etag`` went to Bareos already: the download
    (settled) fails, with the reason, unless it reads that version.  False if it failed."""
    if download.state in (VANISHED, FAILED):
        return False
    if download.size is not None and download.size >= 0 and download.size != size:
        detail = "%d bytes, %d listed" % (download.size, size)
    elif download.etag and etag and download.etag != etag:
        detail = "ETag %s, %s listed" % (download.etag, etag)
    else:
        return True
    download.state, download.error = FAILED, str(ChangedSinceListed(detail))
    return False


class PrefetchPool:
    """Fetch helpers plus the bookkeeping of downloads in flight."""

    def __init__(self, config, python, workers, queue_size, memory_budget, inline_limit,
                 stall_seconds, cancelled, debug=None, faults=None, target=fetcher_main):
        """``workers``: transfers in flight at most (nb_prefetcher); ``faults``: the job's
        retry.FaultCounts; ``target``: the helpers' entry point."""
        self.config = config
        self.python = python
        self.max_transfers = max(1, workers)
        self.max_helpers = -(-self.max_transfers // SLOTS_PER_HELPER)
        self.slots = -(-self.max_transfers // self.max_helpers)
        self.queue_size = queue_size
        self.memory_budget = memory_budget
        self.inline_limit = inline_limit
        self.stall_seconds = stall_seconds
        self.cancelled = cancelled
        self.debug = debug or (lambda text: None)
        self.faults = faults if faults is not None else FaultCounts(self.debug)
        self.target = target
        self.helpers = []  # every helper, started or starting
        self.starting = set()
        self.queue = collections.deque()
        self.held = {}  # seq -> Download, every download not yet released
        self.reserved = 0
        self.floor = -1  # seq of the download Bareos waits for: never held back for memory
        self.start_error = None
        self.poller = select.poll()
        self.listening = {}  # pipe fd -> helper, what self.poller watches
        self.next_watch = 0.0  # when the watchdog looks for stalled downloads next

    # -- admission -------------------------------------------------------------------------
    def has_room(self):
        """May another download be queued ahead of Bareos?"""
        return len(self.held) < self.queue_size and (self.reserved < self.memory_budget or not self.held)

    def add(self, download):
        """Queue a download behind the others."""
        self.held[download.seq] = download
        self.queue.append(download)

    # -- the pump --------------------------------------------------------------------------
    def pump(self, timeout=0.0):
        """Dispatch queued downloads and take in what helpers sent, waiting up to ``timeout``."""
        self._dispatch()
        listening = self._listen()
        if not listening:
            if timeout:
                time.sleep(min(timeout, 0.05))
            return
        for fd, _ in self.poller.poll(timeout * 1000.0):
            helper = listening.get(fd)
            taken = 0
            # One pipe carries all of a helper's downloads: take what is there now (up to a bound),
            # not one message per pump (pump's own work would then come once per message).
            while helper is not None and helper.alive and taken < DRAIN and (taken == 0 or helper.ready(0.0)):
                self._receive(helper)
                taken += 1
        self._watchdog()
        self._dispatch()

    def _listen(self):
        """The helpers whose messages are awaited now, by pipe fd, with the poll set kept in step:
        those starting and those with downloads.  (multiprocessing's wait() would build a new
        selector on every call, and pump runs several times per object.)"""
        wanted = {helper.conn.fileno(): helper for helper in self.helpers
                  if helper in self.starting or helper.downloads}
        if wanted.keys() != self.listening.keys():
            for fd in self.listening.keys() - wanted.keys():
                self.poller.unregister(fd)
            for fd in wanted.keys() - self.listening.keys():
                self.poller.register(fd, select.POLLIN)
        self.listening = wanted
        return wanted

    def wait_settled(self, download):
        """Block until ``download`` has its attributes, is complete, or failed."""
        self._ensure_dispatched(download)
        while not download.settled:
            self._check_cancel()
            self.pump(0.2)
            if download.state == QUEUED and self.start_error and not self.helpers:
                raise PoolFailed(self.start_error)

    def read(self, download):
        """The next chunk of a streaming download, b"" at its end, None if it failed."""
        while not download.chunks:
            if download.state == ENDED:
                return b""
            if download.state in (FAILED, VANISHED):
                return None
            self._check_cancel()
            if download.helper is None:  # queued again after its helper died: resume
                self.wait_settled(download)
                continue
            self.pump(0.2)
        chunk = download.chunks.popleft()
        helper = download.helper
        if helper is not None and download.state == STREAMING:
            try:
                helper.send(("more", download.seq, 1))
            except (OSError, ValueError):  # it died: the stream resumes elsewhere
                self._helper_died(helper, "a fetch process ended unexpectedly")
        return chunk

    def release(self, download):
        """Forget a download; a helper still sending it is told to stop (Bareos stopped reading)."""
        self.held.pop(download.seq, None)
        self._unreserve(download)
        download.data = None
        download.chunks.clear()
        if download.state == QUEUED and download in self.queue:
            self.queue.remove(download)
        self._withdraw(download)

    def close(self):
        """End every helper (also on cancel); waits for all of them."""
        stop_all(self.helpers)
        self.helpers = []
        self.starting.clear()
        self.poller = select.poll()
        self.listening = {}

    # -- dispatch --------------------------------------------------------------------------
    def _check_cancel(self):
        if self.cancelled.is_set():
            raise JobCancelled()

    def _ensure_dispatched(self, download):
        """Put ``download`` first in line: Bareos is waiting for it."""
        self.floor = download.seq
        if download.state != QUEUED:
            return
        if not self._free_slots() and not self.starting:
            self._free_a_slot()
        if download in self.queue:
            self.queue.remove(download)
        self.held[download.seq] = download
        self.queue.appendleft(download)

    def _free_slots(self):
        return sum(self.slots - len(h.downloads) for h in self.helpers if h not in self.starting)

    def _free_a_slot(self):
        """Bareos waits and every slot holds a later, paused stream: withdraw the last one."""
        if len(self.helpers) < self.max_helpers:
            return
        busy = [d for h in self.helpers for d in h.downloads.values()]
        paused = [d for d in busy if d.state == STREAMING]
        if paused and len(paused) == len(busy):
            victim = max(paused, key=lambda d: d.seq)
            self._withdraw(victim)
            self._requeue(victim, front=False)

    def _withdraw(self, download):
        """Take ``download`` from its helper, which is told to drop it."""
        helper = download.helper
        download.helper = None
        if helper is None or helper.downloads.pop(download.seq, None) is None:
            return
        helper.dropped.add(download.seq)
        try:
            helper.send(("cancel", download.seq))
        except (OSError, ValueError):
            self._helper_died(helper, "a fetch process ended unexpectedly")

    def _start_helpers(self):
        if self.start_error:
            return
        # Helpers still starting count as capacity: start only what the queue still lacks.
        in_flight = sum(len(h.downloads) for h in self.helpers)
        wanted = min(self.max_helpers, -(-(in_flight + len(self.queue)) // self.slots))
        while len(self.helpers) < wanted:
            try:
                helper = Helper("bareos-libcloud-fetch", self.target, self.config, self.python, self.cancelled)
            except HelperStartError as exc:
                self.start_error = str(exc)
                return
            except Exception as exc:  # noqa: BLE001 - reported through PoolFailed
                self.start_error = "cannot start a fetch process: %s" % exc
                return
            helper.downloads = {}  # seq -> Download it runs
            helper.dropped = set()  # seqs withdrawn from it: what still comes for them is ignored
            self.helpers.append(helper)
            self.starting.add(helper)

    def _helper_with_room(self):
        best, room = None, 0
        for helper in self.helpers:
            if helper not in self.starting and self.slots - len(helper.downloads) > room:
                best, room = helper, self.slots - len(helper.downloads)
        return best

    def _dispatch(self):
        if not self.queue:
            return
        if not self._free_slots():
            self._start_helpers()
        while self.queue:
            helper = self._helper_with_room()
            if helper is None:
                return
            download = self.queue[0]
            resume = download.received > 0
            size = 0 if resume else min(download.listed["size"], self.inline_limit)
            # While it runs the object is in its helper and, during the hand-over, in the job too.
            # A stream queued again still holds its reservation: it is replaced, not added to.
            reserve = STREAM_HOLD if resume else 2 * size
            others = self.reserved - download.reserved
            over_budget = others + reserve > self.memory_budget and others > 0
            if over_budget and download.seq > self.floor:
                return
            self.queue.popleft()
            download.state = RUNNING
            download.helper = helper
            self._unreserve(download)
            download.reserved = reserve
            download.last_heard = time.monotonic()
            self.reserved += reserve
            helper.downloads[download.seq] = download
            # The helper may hold what was reserved (plus at most GROWTH_SLACK): an object that
            # grew more since the listing comes as a stream, which flows as fast as Bareos reads.
            limit = max(size, min(self.inline_limit, GROWTH_SLACK))
            try:
                helper.send(("get", download.seq, download.bucket, download.key, download.listed, limit,
                             download.received, download.etag if resume else download.if_match))
            except (OSError, ValueError):
                self._helper_died(helper, "a fetch process ended unexpectedly")

    # -- receiving -------------------------------------------------------------------------
    def _receive(self, helper):
        try:
            message = helper.conn.recv()
        except (EOFError, OSError):
            self._helper_died(helper, "a fetch process ended unexpectedly")
            return
        kind = message[0]
        if kind == "debug":
            self.debug(message[1])
            return
        if kind in FaultCounts.KINDS:
            self.faults.count(kind, message[1])
            return
        if kind == "started":
            self.starting.discard(helper)
            return
        if kind == "fatal":
            if helper.downloads:  # a crash while it read objects: they go on elsewhere
                self._helper_died(helper, message[1])
                return
            self.start_error = message[1]
            self._drop_helper(helper)
            return
        download = helper.downloads.get(message[1])
        payload = None
        if kind in ("object", "data"):
            try:
                payload = receive_raw(helper.conn, message[-1])
            except (EOFError, OSError):
                self._helper_died(helper, "a fetch process ended unexpectedly")
                return
        if download is None and message[1] in helper.dropped:
            if kind in ("object", "end", "vanished", "error"):
                helper.dropped.discard(message[1])
            return  # a download withdrawn from it: its last words are not wanted
        if download is None or (kind in ("object", "begin") and message[2] != download.key):
            # An answer to no question, or to another one: this helper cannot be trusted again.
            self._helper_died(helper, "a fetch process answered for another object (%r, expected %s)"
                              % (message[:3], sorted(helper.downloads)))
            return
        download.last_heard = time.monotonic()
        if kind == "object":
            _, _, _, download.size, download.mtime, download.etag, download.meta, _ = message
            download.data = payload
            self._unreserve(download)
            download.reserved = len(payload)
            self.reserved += download.reserved
            self._finish(helper, download, COMPLETE)
        elif kind == "begin":
            _, _, _, download.size, download.mtime, download.etag, download.meta = message
            download.state = STREAMING
            self._unreserve(download)
            download.reserved = STREAM_HOLD
            self.reserved += STREAM_HOLD
        elif kind == "data":
            download.chunks.append(payload)
            download.received += len(payload)
        elif kind == "end":
            download.meta = message[2]  # with the tags, read after the body
            self._finish(helper, download, ENDED)
        elif kind == "vanished":
            if download.received:
                download.error = "the object was deleted while it was read"
            self._finish(helper, download, FAILED if download.received else VANISHED)
        elif kind == "error":
            download.error = message[2]
            self._finish(helper, download, FAILED)

    def _finish(self, helper, download, state):
        download.state = state
        download.helper = None
        helper.downloads.pop(download.seq, None)

    def _unreserve(self, download):
        self.reserved -= download.reserved
        download.reserved = 0

    # -- failures --------------------------------------------------------------------------
    def _watchdog(self):
        now = time.monotonic()
        if now < self.next_watch:
            return
        self.next_watch = now + 1.0  # pump runs several times per object: look once a second
        for helper in list(self.helpers):
            for download in list(helper.downloads.values()):
                if download.state == RUNNING and now - download.last_heard > self.stall_seconds:
                    self._helper_died(helper, "no data from the object store for %d s" % self.stall_seconds)
                    break

    def _helper_died(self, helper, text):
        downloads = list(helper.downloads.values())
        self._drop_helper(helper)
        for download in sorted(downloads, key=lambda d: d.seq, reverse=True):
            download.helper = None
            if download.state not in (RUNNING, STREAMING):
                continue
            download.restarts += 1
            if download.restarts > MAX_RESTARTS:
                download.error = "%s (%d times)" % (text, download.restarts)
                download.state = FAILED
                continue
            self.faults.count(RESUMED if download.received else RETRIED,
                              "%s; %s/%s continues in another process at byte %d"
                              % (text, download.bucket, download.key, download.received))
            self._requeue(download, front=True)

    def _requeue(self, download, front):
        """Queue a download again; a begun stream keeps its bytes and resumes after them."""
        if download.received == 0:
            self._unreserve(download)
            download.chunks.clear()
        download.state = QUEUED
        download.helper = None
        download.data = None
        if front:
            self.queue.appendleft(download)
        else:
            self.queue.append(download)

    def _drop_helper(self, helper):
        helper.kill()
        helper.downloads = {}
        self.starting.discard(helper)
        if helper in self.helpers:
            self.helpers.remove(helper)
