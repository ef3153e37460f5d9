"""One backup (or estimate) as the job thread runs it: listing in, objects out in order.

The lister process streams the listing; every entry is planned (skip, declare, prefetch or
stream) by :class:`ChangePolicy`; downloads go to the :class:`~.prefetch.PrefetchPool`.
``next_object`` hands Bareos the next object with the attributes of the bytes it will read.
"""

import collections
import time

from .. import naming, selection
from ..archive import KeptNames, RestoreState
from ..protocol import lister_main
from ..retry import FaultCounts, RetryPolicy
from ..shards import in_shard
from .direct import DirectDownload, Signer
from .helpers import Helper, HelperStartError
from .joblog import plural
from .prefetch import FAILED, VANISHED, Download, JobCancelled, PrefetchPool, changed_since_listed
from .streaming import ObjectReader

SKIP, DECLARE, PREFETCH, STREAM = "skip", "declare", "prefetch", "stream"
#: Archived objects named in the job log, per line.
NAMES_SHOWN = 20
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

    __slots__ = ("bucket", "key", "fname", "plan", "download", "size", "mtime", "etag", "md5", "forced",
                 "restored", "meta")

    def __init__(self, bucket, key, fname, plan, size, mtime, etag, md5, forced, restored=False):
        self.bucket, self.key, self.fname, self.plan = bucket, key, fname, plan
        self.size, self.mtime, self.etag, self.md5, self.forced = size, mtime, etag, md5, forced
        self.restored = restored  # its restore request (archived=request) made it readable
        self.download = None
        self.meta = ()  # its metadata (metadata.py), from the GET: Bareos gets it at get_xattr

    def new_download(self, pool, seq, if_match=None):
        """A download by the fetch helpers; ``if_match``: only that version (see open_on_demand)."""
        listed = {"size": self.size, "mtime": self.mtime, "etag": self.etag, "md5": self.md5, "meta": self.meta}
        self.download = Download(pool, seq, self.bucket, self.key, listed, if_match)
        return self.download


class Stats:
    """The job's counters (listed = saved + unchanged + vanished + failed + archived objects not
    saved: ``archived`` with archived=skip, ``requested + pending + restore_failed`` with
    archived=request).  ``restored``: objects saved after a restore request (within ``saved``);
    ``left_out``: objects of the prefix that the selection options left out (not in ``listed``)."""

    def __init__(self):
        self.listed = self.saved = self.unchanged = self.vanished = self.failed = 0
        self.declared = self.bytes = 0
        self.archived = self.requested = self.pending = self.restore_failed = self.restored = 0
        self.left_out = 0
        self.started = time.monotonic()

    @property
    def done(self):
        """Objects dealt with so far (the listing itself runs ahead)."""
        return self.saved + self.unchanged + self.vanished + self.failed

    def summary(self, estimate=False):
        seconds = max(time.monotonic() - self.started, 0.001)
        if estimate:  # nothing is read: ``declared`` objects of ``bytes`` in all went to Bareos
            text = "estimate: %s listed, %d declared to Bareos (%s), %d skipped as unchanged in %.1f s" % (
                plural(self.listed, "object"), self.declared, size_text(self.bytes), self.unchanged, seconds)
        else:
            text = "%s listed, %d saved (%s), %d unchanged, %d vanished, %d failed in %.1f s (%.1f MiB/s)" % (
                plural(self.listed, "object"), self.saved, size_text(self.bytes), self.unchanged, self.vanished,
                self.failed, seconds, self.bytes / seconds / 1048576.0)
        if self.archived:
            text += "; %d archived, not saved" % self.archived
        asked = self.requested + self.pending + self.restore_failed + self.restored
        if asked:
            text += "; %d archived: %s sent, %d pending, %d restored and saved" % (
                asked, plural(self.requested, "restore request"), self.pending, self.restored)
            if self.restore_failed:
                text += ", %s failed" % plural(self.restore_failed, "restore request")
        if self.left_out:
            text += "; %d left out by the selection" % self.left_out
        return text


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


def size_text(count):
    """``1000 B``, ``1.5 MiB``: a byte count for a message."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return ("%d %s" % (count, unit)) if unit == "B" else ("%.1f %s" % (count, unit))
        count /= 1024.0


def lister_config(opts, policy, now):
    """What the lister process of a line with these options gets (the command-line tool's
    listing is the job's own: cli/ uses it too)."""
    return {
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
        "shard_by": opts.shard_by,
        "selection": selection.spec_of(opts),
        "now": now,
        "since": policy.since,
        "accurate": policy.accurate,
        "estimate": policy.estimate,
        "archived": opts.archived,
        "restore_tier": opts.restore_tier,
        "restore_days": opts.restore_days,
        "restore_state": None,
    }


class BackupSession:
    """The backup side of one job."""

    def __init__(self, opts, log, policy, python, cancelled, journal=None):
        self.opts = opts
        self.log = log
        self.policy = policy
        self.python = python
        self.cancelled = cancelled
        self.journal = journal
        self.now = int(time.time())  # the job's start, for the ages of newer_than/older_than
        self.key_selection = None  # selection.Selection for journal entries, made when needed
        self.forced = set(journal.pending) if journal is not None else set()
        self.forced_unlisted = _by_bucket(self.forced)  # bucket -> names not listed yet
        self.config = lister_config(opts, policy, self.now)
        self.selection_spec = self.config["selection"]
        # archived=request: the restore requests of earlier jobs, settled by this one (archive.py)
        self.restores = None
        if opts.archived == "request" and journal is not None and not policy.estimate:
            self.restores = RestoreState.beside(journal)
            self.restores.load()
            self.config["restore_state"] = self.restores.where()
        elif opts.archived == "request" and not policy.estimate:
            log.warning("archived=request records its restore requests in the daemon's working directory, "
                        "which this daemon does not have: archived objects are skipped, not restored")
        self.kept = KeptNames()  # archived objects not declared to Bareos (accurate mode)
        self.archived_names = []  # (bucket, key, storage class, state), NAMES_SHOWN at most
        self.archived_classes = {}
        self.restore_errors = []
        self.stats = Stats()
        self.lister = None
        self.listing_done = False
        self.listing_failed = False  # a bucket, or the whole listing, did not finish
        self.progress_next = 0  # stats.done at which the next progress message is due
        self.buckets = []
        self.complete_buckets = set()
        self.failed_names = set()  # fnames not saved this job: check_file keeps their old copy (keeps)
        self.upcoming = collections.deque()
        self.seq = 0
        self.pool = None
        self.signer = None
        self.current = None  # the download being opened or read, for a cancel from another thread
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
                if self.selection_spec:
                    self.log.info("selection within %s: %s" % (
                        "prefix %r" % self.opts.prefix if self.opts.prefix else "the buckets",
                        selection.describe(self.selection_spec)))
                return

    def close(self):
        """End every helper process; safe to call more than once, also on cancel."""
        if self.current is not None:
            self.current.close()
            self.current = None
        if self.pool is not None:
            self.pool.close()
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
        elif kind == "restored":
            self._plan(message[1], message[2], restored=True)
        elif kind == "tally":
            self._tally(message[1], message[2])
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
            self._name_archived()
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
        text = self.stats.summary(self.policy.estimate)
        faults = self.faults
        if faults.retried or faults.resumed:
            text += "; %s retried, %s resumed" % (plural(faults.retried, "request"),
                                                  plural(faults.resumed, "transfer"))
        return text

    def throttled(self):
        """Whether the store failed often enough for a warning (a retry per 100 objects, 10 at least)."""
        return self.faults.retried >= max(10, self.stats.listed // 100)

    def _plan(self, bucket, entries, restored=False):
        """``restored``: objects whose restore request made them readable: saved whatever their
        times say (Bareos's change check is off for them, as for journaled objects)."""
        policy, forced_names, stats = self.policy, self.forced, self.stats
        for key, size, mtime, etag, md5, meta in entries:
            stats.listed += 1
            fname = None
            if forced_names or restored:
                fname = self._name(bucket, key)
                if fname is None:
                    continue
            forced = restored or fname in forced_names
            if forced:
                self.forced_unlisted.get(bucket, {}).pop(fname, None)
            plan = policy.plan(size, mtime, forced)
            if plan == SKIP:
                stats.unchanged += 1
                continue
            fname = fname or self._name(bucket, key)
            if fname is None:
                continue
            item = Item(bucket, key, fname, plan, size, mtime, etag, md5, forced, restored)
            if meta:
                item.meta = meta  # what a generic listing states (a generic GET shows no headers)
            if plan == PREFETCH:
                self.seq += 1
                self.pool.add(item.new_download(self.pool, self.seq))
            self.upcoming.append(item)

    def _tally(self, bucket, tally):
        """What the lister did not send of a bucket (protocol.py, "tally")."""
        stats = self.stats
        stats.unchanged += tally["unchanged"]
        stats.vanished += tally["vanished"]
        stats.left_out += tally["left_out"]
        for name in ("archived", "requested", "pending", "restore_failed"):
            setattr(stats, name, getattr(stats, name) + tally[name])
        stats.listed += (tally["unchanged"] + tally["vanished"] + tally["archived"] + tally["requested"]
                         + tally["pending"] + tally["restore_failed"])
        for storage_class, count in tally["classes"].items():
            self.archived_classes[storage_class] = self.archived_classes.get(storage_class, 0) + count
        room = max(NAMES_SHOWN - len(self.archived_names), 0)
        self.archived_names.extend((bucket,) + tuple(name) for name in tally["names"][:room])
        room = max(NAMES_SHOWN - len(self.restore_errors), 0)
        self.restore_errors.extend((bucket,) + tuple(error) for error in tally["errors"][:room])
        self.kept.add(tally["kept"])
        if self.restores is not None:
            for fname in tally["gone"]:
                self.restores.vanished(fname)

    def _name_archived(self):
        """Once per line: the archived objects this job did not save, in one job message."""
        stats = self.stats
        not_saved = stats.archived + stats.requested + stats.pending + stats.restore_failed
        if not_saved:
            classes = ", ".join("%s %d" % item for item in sorted(self.archived_classes.items()))
            names = ", ".join("%s/%s (%s)" % (bucket, key, state) if state != "archived" else "%s/%s" % (bucket, key)
                              for bucket, key, _, state in self.archived_names)
            more = not_saved - len(self.archived_names)
            if stats.archived and not (stats.requested or stats.pending or stats.restore_failed):
                what = "archived, not saved (archived=request has them restored, then saved by a later job)"
            else:
                what = "archived, not saved yet: a later job saves each once its restored copy is readable"
            self.log.warning("%s (storage class %s) %s: %s%s" % (
                plural(not_saved, "object"), classes, what, names,
                " and %d more" % more if more > 0 else ""))
        if self.restore_errors:
            self.log.error("%s could not be asked to be restored: %s%s" % (
                plural(stats.restore_failed, "archived object"),
                ", ".join("%s/%s: %s" % error for error in self.restore_errors),
                " and %d more" % (stats.restore_failed - len(self.restore_errors))
                if stats.restore_failed > len(self.restore_errors) else ""))
        if self.listing_done and not stats.listed and stats.left_out:
            self.log.info("the selection (%s) left out all %s of the prefix" % (
                selection.describe(self.selection_spec), plural(stats.left_out, "object")))

    def _bucket_done(self, bucket):
        """The bucket was listed whole: journaled objects of this selection that were not
        listed no longer exist (or left the selection), and leave the journal."""
        self.complete_buckets.add(bucket)
        unlisted = self.forced_unlisted.pop(bucket, {})
        if self.journal is None or not unlisted:
            return
        for fname, key in unlisted.items():
            if self._covers(bucket, key):
                self.journal.vanished(fname)

    def _covers(self, bucket, key):
        """Whether ``key`` is in this line's key space: its prefix, shard and key patterns (other
        lines of the job may cover other keys of the bucket)."""
        opts = self.opts
        prefix = opts.prefix or ""
        if not key.startswith(prefix) or not in_shard(bucket, key, opts.shard, opts.shard_by, prefix):
            return False
        if self.key_selection is None:
            self.key_selection = selection.Selection(self.selection_spec, self.now)
        return self.key_selection.key_selected(key)

    def keeps(self, fname):
        """Whether check_file must keep ``fname``'s previous copy (bRC_Seen): the object exists
        but this job did not save it (its read failed, or it is archived)."""
        return fname in self.failed_names or fname in self.kept

    def end_job(self, job_ok):
        """At the job's end: settle the restore requests (only a job that went well does)."""
        if self.restores is not None:
            self.restores.close(job_ok=job_ok)
            self.restores = None

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
                if self.policy.estimate:
                    self.stats.bytes += item.size
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
            self.log.debug("large objects go through the fetch helpers: %s" % self.signer.why_not)
            self.signer.why_not = None
        self.seq += 1
        item.new_download(self.pool, self.seq, if_match)

    def _wait_settled(self, download):
        self.current = download
        download.open()

    def _release(self, download):
        download.close()
        if self.current is download:
            self.current = None

    def abort(self):
        """From the cancelling thread: unblock a read the job thread may be waiting in."""
        current = self.current
        if current is not None:
            current.abort()

    def _settle(self, item, on_demand=False):
        """Wait for the item's download to know its attributes; False if it is not saved.

        ``on_demand``: Bareos has the listed attributes already (open_on_demand): a download of
        another version fails, and the caller reports a failure."""
        download = item.download
        self._wait_settled(download)
        if download.state == FAILED and download.signer_lost:
            self._release(download)  # no signing process could be started: a fetch helper reads it
            self.log.debug("%s/%s goes through a fetch helper: %s" % (item.bucket, item.key, download.error))
            self.seq += 1
            download = item.new_download(self.pool, self.seq, download.if_match)
            self._wait_settled(download)
        if on_demand:
            return changed_since_listed(download, item.size, item.etag)
        if download.state == VANISHED:
            self._release(download)
            self.vanished(item)
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
        item.meta = download.meta  # a stream's tags come at its end (get_xattr asks the download)
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
        if item.restored:
            self.stats.restored += 1
            if self.restores is not None:
                self.restores.saved(item.fname)

    def open_on_demand(self, item):
        """Bareos reads an object the plan did not fetch (accurate found it changed): False when
        it is not saved (``item.download.error`` says why, unless it vanished)."""
        # Its listed attributes went to Bareos: read that version only (If-Match), or fail.
        if item.size >= self.policy.prefetch_size:
            self._new_stream(item, if_match=item.etag)
        else:
            self.seq += 1
            item.new_download(self.pool, self.seq, item.etag)
        return self._settle(item, on_demand=True)

    def reader(self, item):
        """An :class:`~.streaming.ObjectReader` for the item's bytes."""
        download = item.download
        return ObjectReader(download, lambda: self._next_chunk(download))

    def _next_chunk(self, download):
        self.pool.pump(0.0)  # the fetch helpers keep working on the objects after this one
        return download.next_chunk()

    def done_with(self, item):
        """Bareos finished with the item (also after a failed or partial read)."""
        if item.download is not None:
            self._release(item.download)
            item.download = None
