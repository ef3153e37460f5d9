"""One backup (or estimate) as the job thread runs it: listing in, objects out in order.

The lister process streams the listing; every entry is planned (skip, declare, prefetch or
stream) by :class:`ChangePolicy`; downloads go to the :class:`~.prefetch.PrefetchPool`.
``next_object`` hands Bareos the next object with the attributes of the bytes it will read.
"""

import collections
import time

from . import naming
from .direct import DirectDownload, Signer
from .helpers import Helper, HelperStartError
from .joblog import plural
from .prefetch import FAILED, VANISHED, Download, JobCancelled, PrefetchPool, changed_since_listed
from .retry import FaultCounts, RetryPolicy
from .shards import shard_of
from .streaming import ObjectReader
from .worker import lister_main

SKIP, DECLARE, PREFETCH, STREAM = "skip", "declare", "prefetch", "stream"
STARTUP_SECONDS = 120


class SetupFailed(Exception):
    """The job cannot start (bad provider, refused credentials, unreachable host...)."""


class ChangePolicy:
    """Decides per listed object whether this job saves it and how.

    An object is new or changed when its Last-Modified is at or after the since time, less
    ``margin`` seconds in a job that is not accurate (the store's clock is not the director's,
    and a multipart upload's Last-Modified is the time it began).  In an accurate incremental,
    unchanged objects are still declared so Bareos marks them seen.
    """

    def __init__(self, since, accurate, prefetch_size, estimate, margin=0):
        self.since = max(since - (0 if accurate else margin), 1) if since else 0
        self.accurate = accurate
        self.prefetch_size = prefetch_size
        self.estimate = estimate

    def changed(self, mtime):
        return self.since == 0 or mtime is None or mtime >= self.since

    def plan(self, size, mtime, forced=False):
        """``forced``: the retry journal says an earlier job could not save it."""
        if not forced and not self.changed(mtime):
            return DECLARE if self.accurate else SKIP
        if self.estimate:
            return DECLARE
        return PREFETCH if size < self.prefetch_size else STREAM


class Item:
    """An object Bareos is told about."""

    __slots__ = ("bucket", "key", "fname", "plan", "download", "size", "mtime", "etag", "md5", "forced")

    def __init__(self, bucket, key, fname, plan, size, mtime, etag, md5, forced):
        self.bucket, self.key, self.fname, self.plan = bucket, key, fname, plan
        self.size, self.mtime, self.etag, self.md5, self.forced = size, mtime, etag, md5, forced
        self.download = None

    def new_download(self, seq, if_match=None):
        """A download by the prefetchers; ``if_match``: only that version (see open_on_demand)."""
        listed = {"size": self.size, "mtime": self.mtime, "etag": self.etag, "md5": self.md5}
        self.download = Download(seq, self.bucket, self.key, listed, if_match)
        return self.download


class Stats:
    """The job's counters (listed = saved + unchanged + vanished + failed + skipped)."""

    def __init__(self):
        self.listed = self.saved = self.unchanged = self.vanished = self.failed = 0
        self.declared = self.bytes = 0
        self.started = time.monotonic()

    @property
    def done(self):
        """Objects dealt with so far (the listing itself runs ahead)."""
        return self.saved + self.unchanged + self.vanished + self.failed

    def summary(self):
        seconds = max(time.monotonic() - self.started, 0.001)
        return (
            "%d objects listed, %d saved (%s), %d unchanged, %d vanished, %d failed in %.1f s (%.1f MB/s)"
            % (self.listed, self.saved, _size(self.bytes), self.unchanged, self.vanished, self.failed,
               seconds, self.bytes / seconds / 1e6)
        )


def _by_bucket(fnames):
    """``{bucket: {fname: key}}`` of backup names."""
    out = {}
    for fname in fnames:
        try:
            bucket, key = naming.parse_fname(fname)
        except naming.BadName:
            continue
        out.setdefault(bucket, {})[fname] = key
    return out


def _size(count):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return ("%d %s" % (count, unit)) if unit == "B" else ("%.1f %s" % (count, unit))
        count /= 1024.0


class BackupSession:
    """The backup side of one job."""

    def __init__(self, opts, log, policy, python, cancelled, journal=None):
        self.opts = opts
        self.log = log
        self.policy = policy
        self.python = python
        self.cancelled = cancelled
        self.journal = journal
        self.forced = set(journal.pending) if journal is not None else set()
        self.forced_unlisted = _by_bucket(self.forced)  # bucket -> names not listed yet
        self.config = {
            "provider": opts.provider,
            "driver_kwargs": opts.driver_kwargs,
            "ca_file": opts.ca_file,
            "timeout": opts.timeout,
            "buckets_include": opts.buckets_include,
            "buckets_exclude": opts.buckets_exclude,
            "prefix": opts.prefix,
            "retries": opts.retries,
            "retry_max_wait": opts.retry_max_wait,
            "debug": opts.debug,
            "secrets": opts.secrets,
            "shard": opts.shard,
        }
        self.stats = Stats()
        self.lister = None
        self.listing_done = False
        self.listing_failed = False  # a bucket, or the whole listing, did not finish
        self.progress_next = 0  # stats.done at which the next progress message is due
        self.buckets = []
        self.complete_buckets = set()
        self.failed_names = set()  # fnames not saved this job: check_file keeps their old copy
        self.upcoming = collections.deque()
        self.seq = 0
        self.pool = None
        self.signer = None
        self.direct = None  # the DirectDownload being read, for a cancel from another thread
        self.faults = FaultCounts(log.debug)  # retried requests, resumed transfers: for the summary
        if not policy.estimate:
            self.signer = Signer(self.config, python, cancelled)
            self.pool = PrefetchPool(
                self.config,
                python,
                workers=opts.nb_prefetcher,
                queue_size=opts.queue_size,
                memory_budget=opts.prefetch_memory,
                inline_limit=max(opts.prefetch_size - 1, 0),
                stall_seconds=opts.timeout * 4 + 30,
                cancelled=cancelled,
                debug=log.debug,
                faults=self.faults,
            )

    # -- start and end ---------------------------------------------------------------------
    def start(self):
        """Start the lister and wait until it has checked credentials and buckets."""
        try:
            self.lister = Helper("bareos-libcloud-lister", lister_main, self.config, self.python, self.cancelled)
        except HelperStartError as exc:
            if self.cancelled.is_set():
                raise JobCancelled() from None
            raise SetupFailed(str(exc)) from None
        deadline = time.monotonic() + STARTUP_SECONDS + self.opts.timeout
        while True:
            if self.cancelled.is_set():
                raise JobCancelled()
            if time.monotonic() > deadline:
                raise SetupFailed("the object store did not answer within %d s" % (deadline - self.stats.started))
            if not self.lister.ready(0.2):
                continue
            message = self._receive_listing()
            if message is None:
                raise SetupFailed("the listing process ended before it could start (see the debug log)")
            if message[0] == "fatal":
                raise SetupFailed(message[1])
            self._report(message)
            if message[0] == "ready":
                self.buckets = message[1]
                self.log.debug("buckets to back up: %s" % ", ".join(self.buckets))
                return

    def close(self):
        """End every helper process; safe to call more than once, also on cancel."""
        if self.pool is not None:
            self.pool.close()
        if self.direct is not None:
            self.direct.close()
            self.direct = None
        if self.signer is not None:
            self.signer.stop()
        if self.lister is not None:
            self.lister.stop(grace=0.5)

    # -- the listing -----------------------------------------------------------------------
    def _receive_listing(self):
        try:
            return self.lister.conn.recv()
        except (EOFError, OSError):
            return None

    def _take_listing(self, block):
        """Read one lister message into ``upcoming``; False when no more will come."""
        if self.listing_done:
            return False
        if not block and not self.lister.ready():
            return True
        while not self.lister.ready(0.2):
            if self.cancelled.is_set():
                raise JobCancelled()
            if self.pool is not None:
                self.pool.pump(0.0)
            if not self.lister.process.is_alive() and not self.lister.ready():
                break
        message = self._receive_listing()
        if message is None:
            self.listing_done = self.listing_failed = True
            self.log.error("the listing process ended unexpectedly; the backup is incomplete")
            return False
        kind = message[0]
        if kind == "entries":
            self._plan(message[1], message[2])
        elif self._report(message):
            pass
        elif kind == "bucket_done":
            self._bucket_done(message[1])
        elif kind == "bucket_failed":
            self.listing_failed = True
            self.log.error("listing bucket %r failed, its objects are not all saved: %s" % (message[1], message[2]))
        elif kind == "fatal":
            self.listing_done = self.listing_failed = True
            self.log.fatal(message[1])
        elif kind == "done":
            self.listing_done = True
        return not self.listing_done

    def _report(self, message):
        """A lister message for the job log or the fault counts; False for any other."""
        kind = message[0]
        if kind in FaultCounts.KINDS:
            self.faults.count(kind, message[1])
        elif kind in ("warning", "error", "debug"):
            getattr(self.log, kind)(message[1])
        else:
            return False
        return True

    def summary(self):
        """The accounting line of the job log (and of its progress messages)."""
        text = self.stats.summary()
        faults = self.faults
        if faults.retried or faults.resumed:
            text += "; %s retried, %s resumed" % (plural(faults.retried, "request"),
                                                  plural(faults.resumed, "transfer"))
        return text

    def throttled(self):
        """Whether the store failed often enough for a warning (a retry per 100 objects, 10 at least)."""
        return self.faults.retried >= max(10, self.stats.listed // 100)

    def _plan(self, bucket, entries):
        policy, forced_names, stats = self.policy, self.forced, self.stats
        for key, size, mtime, etag, md5 in entries:
            stats.listed += 1
            fname = None
            if forced_names:
                fname = self._name(bucket, key)
                if fname is None:
                    continue
            forced = fname in forced_names
            if forced:
                self.forced_unlisted.get(bucket, {}).pop(fname, None)
            plan = policy.plan(size, mtime, forced)
            if plan == SKIP:
                stats.unchanged += 1
                continue
            fname = fname or self._name(bucket, key)
            if fname is None:
                continue
            item = Item(bucket, key, fname, plan, size, mtime, etag, md5, forced)
            if plan == PREFETCH:
                self.seq += 1
                self.pool.add(item.new_download(self.seq))
            self.upcoming.append(item)

    def _bucket_done(self, bucket):
        """The bucket was listed whole: journaled objects of this selection that were not
        listed no longer exist, and leave the journal."""
        self.complete_buckets.add(bucket)
        unlisted = self.forced_unlisted.pop(bucket, {})
        if self.journal is None:
            return
        prefix, shard = self.opts.prefix or "", self.opts.shard
        for fname, key in unlisted.items():
            if key.startswith(prefix) and (not shard or shard_of(bucket, key, shard[1]) == shard[0]):
                self.journal.vanished(fname)

    def _name(self, bucket, key):
        try:
            return naming.object_fname(bucket, key)
        except naming.BadName as exc:
            self.stats.failed += 1
            self.log.error("object %r in bucket %r cannot be named: %s" % (key, bucket, exc))
            return None

    def _fill(self):
        """Keep the listing ahead of Bareos, without blocking while anything is queued."""
        while not self.listing_done and (not self.upcoming or self._has_room()):
            if not self._take_listing(block=not self.upcoming):
                break
            if self.upcoming and not self.lister.ready():
                break

    def _has_room(self):
        if self.pool is None:
            return len(self.upcoming) < self.opts.queue_size
        return self.pool.has_room() and len(self.upcoming) < self.opts.queue_size * 4

    # -- objects -----------------------------------------------------------------------------
    def next_object(self):
        """The next Item for Bareos (attributes final), or None at the end of the listing."""
        while True:
            self._fill()
            if self.pool is not None:
                self.pool.pump(0.0)
            if not self.upcoming:
                return None
            item = self.upcoming.popleft()
            if item.plan == DECLARE:
                self.stats.declared += 1
                return item
            if item.plan == STREAM:
                self._new_stream(item)
            if self._settle(item):
                return item

    def _new_stream(self, item, if_match=None):
        """A large object: read by the job itself where the signer can sign its GETs.
        ``if_match``: only that version (see open_on_demand)."""
        if self.signer.usable():
            opts = self.opts
            retry = RetryPolicy(opts.retries, opts.retry_max_wait, sleep=self.cancelled.wait, count=self.faults.count)
            item.download = DirectDownload(item.bucket, item.key, self.signer, retry, opts.timeout, self.cancelled,
                                           listed_size=item.size, if_match=if_match)
            return
        if self.signer.why_not:
            self.log.debug("large objects go through the prefetch processes: %s" % self.signer.why_not)
            self.signer.why_not = None
        self.seq += 1
        item.new_download(self.seq, if_match)

    def _wait_settled(self, download):
        if isinstance(download, DirectDownload):
            self.direct = download
            download.open()
        else:
            self.pool.wait_settled(download)

    def _release(self, download):
        if isinstance(download, DirectDownload):
            download.close()
            if self.direct is download:
                self.direct = None
        else:
            self.pool.release(download)

    def abort(self):
        """From the cancelling thread: unblock a direct read the job thread may be waiting in."""
        direct = self.direct
        if direct is not None:
            direct.abort()

    def _settle(self, item, on_demand=False):
        """Wait for the item's download to know its attributes; False if it is not saved.

        ``on_demand``: Bareos has the listed attributes already (open_on_demand): a download of
        another version fails, and the caller reports a failure."""
        download = item.download
        self._wait_settled(download)
        if isinstance(download, DirectDownload) and download.state == FAILED and download.signer_lost:
            self._release(download)  # no signing process could be started: a prefetcher reads it
            self.log.debug("%s/%s goes through a prefetch process: %s" % (item.bucket, item.key, download.error))
            self.seq += 1
            download = item.new_download(self.seq, download.if_match)
            self._wait_settled(download)
        if on_demand:
            return changed_since_listed(download, item.size, item.etag)
        if download.state == VANISHED:
            self.stats.vanished += 1
            self._release(download)
            self.log.warning("object %r in bucket %r was deleted before it could be read; not saved"
                             % (item.key, item.bucket))
            return False
        if download.state == FAILED:
            self.not_saved(item, download.error)
            self._release(download)
            return False
        if download.size is not None:
            item.size = download.size
        if download.etag and item.etag and download.etag != item.etag and download.mtime:
            item.mtime = download.mtime  # changed since the listing: describe the bytes we read
        item.etag = download.etag or item.etag
        return True

    def not_saved(self, item, reason):
        """Name the object in an M_ERROR and journal it, so the next backup saves it again."""
        self.stats.failed += 1
        self.failed_names.add(item.fname)
        self.log.error("object %r in bucket %r could not be saved: %s" % (item.key, item.bucket, reason))
        if self.journal is not None:
            self.journal.add(item.fname, reason)

    def vanished(self, item):
        """The object was deleted before it could be read: not saved, nothing to save again."""
        self.stats.vanished += 1
        self.log.warning("object %r in bucket %r was deleted before it could be read; not saved"
                         % (item.key, item.bucket))
        if self.journal is not None:
            self.journal.vanished(item.fname)

    def saved(self, item, size):
        """The object went to Bareos whole."""
        self.stats.saved += 1
        self.stats.bytes += size
        if self.journal is not None:
            self.journal.saved(item.fname)

    def open_on_demand(self, item):
        """Bareos reads an object the plan did not fetch (accurate found it changed): False when
        it is not saved (``item.download.error`` says why, unless it vanished)."""
        # Its listed attributes went to Bareos: read that version only (If-Match), or fail.
        if item.size >= self.policy.prefetch_size:
            self._new_stream(item, if_match=item.etag)
        else:
            self.seq += 1
            item.new_download(self.seq, item.etag)
        return self._settle(item, on_demand=True)

    def reader(self, item):
        """An :class:`~.streaming.ObjectReader` for the item's bytes."""
        download = item.download
        if isinstance(download, DirectDownload):
            return ObjectReader(download, lambda: self._direct_chunk(download))
        return ObjectReader(download, lambda: self.pool.read(download))

    def _direct_chunk(self, download):
        self.pool.pump(0.0)  # the prefetchers keep working on the objects after this one
        return download.next_chunk()

    def done_with(self, item):
        """Bareos finished with the item (also after a failed or partial read)."""
        if item.download is not None:
            self._release(item.download)
            item.download = None
