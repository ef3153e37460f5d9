"""Restoring objects into a bucket (``restore_to=bucket``); the uploads run in helper/uploader.py.

Bareos calls, per object: create_file (``plan``: the target bucket and key), IO_OPEN, IO_WRITE...,
IO_CLOSE (the bytes go to a spool file below ``where``), set_xattr (the object's metadata, which
Bareos sends only after the data: docs/bareos-api-notes.md), end_restore_file (``end_file``: the
object goes to the upload helper).  Uploads run while Bareos sends the next objects; at most
``spool_limit`` bytes wait on disk (one object whatever its size).  ``finish`` waits for every
answer: an object that could not be uploaded is named in an M_ERROR.
"""

import os
import secrets
import shutil
import tempfile
import time

from .. import metadata, naming
from ..protocol import uploader_main
from ..retry import RESUMED, RETRIED, FaultCounts
from .backup import size_text
from .helpers import Helper, HelperStartError
from .restore import IncompleteCopy, PartFile, RestoreRefused, original_name

REPLACE_NAMES = {ord("a"): "always", ord("w"): "ifnewer", ord("o"): "ifolder", ord("n"): "never"}
#: Upload helpers started for one object store in one job before its objects fail instead.
HELPER_STARTS = 3
#: Seconds a cancelled restore gives its uploads to stop (and abort their multipart uploads).
CANCEL_GRACE = 30.0


class Pending:
    """One object on its way into a bucket."""

    __slots__ = ("bucket", "key", "label", "part", "size", "expected", "mtime", "meta", "store", "seq", "replace")

    def __init__(self, bucket, key, label, expected, mtime, store, replace):
        self.bucket, self.key, self.label = bucket, key, label
        self.expected, self.mtime, self.store = expected, mtime, store
        self.replace = replace  # Bareos's replace setting, as the upload helper names it
        self.part, self.size, self.seq = None, 0, None  # part: the spool file (restore.PartFile)
        self.meta = []


class Store:
    """The upload helper of one object store (the options' connection) and what it has in hand."""

    def __init__(self, opts, keep_class):
        self.opts, self.keep_class = opts, keep_class
        self.helper = None
        self.starts = 0
        self.why_not = None
        self.in_flight = {}  # seq -> Pending


class BucketRestore:
    """The restore into buckets of one job."""

    def __init__(self, log, python, cancelled, spool_root):
        self.log, self.python, self.cancelled = log, python, cancelled
        self.spool_root = spool_root
        self.spool_dir = None
        self.stores = {}
        self.current = None
        self.seq = 0
        self.spooled = 0  # bytes in spool files not yet answered
        self.stored = self.kept = self.failed = 0
        self.bytes_stored = 0
        self.faults = FaultCounts(log.debug)
        self.cancel_sent = False
        self.setup_error = None  # the upload helper could not set up (options, credentials): fatal
        self.target = None  # for messages about a failed write

    # -- create_file ---------------------------------------------------------------------------
    def plan(self, packet, opts, store_key, keep_class):
        """Decide where the object goes; raises RestoreRefused."""
        fname = original_name(packet)
        try:
            bucket, key = naming.parse_fname(fname)
        except naming.BadName as exc:
            raise RestoreRefused("%r is not a name made by this plugin (%s)" % (fname, exc)) from None
        target_bucket = opts.restore_bucket or bucket
        target_key = (opts.restore_prefix or "") + key
        store = self.stores.get(store_key)
        if store is None:
            store = self.stores[store_key] = Store(opts, keep_class)
        size = packet.statp.st_size
        label = "object %r in bucket %r" % (target_key, target_bucket)
        self.current = Pending(target_bucket, target_key, label, size if 0 <= size < 1 << 63 else None,
                               packet.statp.st_mtime, store, REPLACE_NAMES.get(packet.replace, "always"))
        self.target = label
        return "%s (bucket %r)" % (target_key, target_bucket)

    # -- plugin_io -----------------------------------------------------------------------------
    def open(self):
        if self.spool_dir is None:
            os.makedirs(self.spool_root, mode=0o750, exist_ok=True)
            self.spool_dir = tempfile.mkdtemp(prefix=".bareos-libcloud-upload-", dir=self.spool_root)
        self.current.part = PartFile(self.spool_dir, secrets.token_hex(8))

    def write(self, data):
        self.current.part.write(data)

    def seek(self, offset, whence):
        self.current.part.seek(offset, whence)

    def set_attributes(self, mtime):
        if self.current is not None:
            self.current.mtime = mtime

    def close(self):
        pending = self.current
        if pending is None or pending.part is None or not pending.part.open:
            return
        pending.size = pending.part.size()
        pending.part.close()
        if pending.expected is not None and pending.size < pending.expected:
            held = pending.size
            self.abandon()
            raise IncompleteCopy(
                "%s was not restored: this backup holds %d bytes of it, not %d (reading it failed "
                "during that backup, whose job log names it; restore it from another backup)"
                % (pending.label, held, pending.expected))

    def set_xattr(self, name, value):
        pair = metadata.from_xattr(name, value)
        if pair is not None and self.current is not None:
            self.current.meta.append(pair)

    # -- end_restore_file ----------------------------------------------------------------------
    def end_file(self):
        """The object's data and metadata are in: it goes to the upload helper."""
        pending, self.current = self.current, None
        if pending is None or pending.part is None or pending.part.open:
            self._drop(pending)  # never closed: a failed or cancelled write
            return
        store = pending.store
        self.pump(0.0)
        while self.spooled and self.spooled + pending.size > store.opts.prefetch_memory and not self.cancelled.is_set():
            self.pump(0.2)
        if self.cancelled.is_set() or self.setup_error or not self._ensure_helper(store):
            if not (self.cancelled.is_set() or self.setup_error):
                self._failed(pending, store.why_not)
            self._drop(pending)
            return
        self.seq += 1
        pending.seq = self.seq
        spec = {"bucket": pending.bucket, "key": pending.key, "path": pending.part.path, "size": pending.size,
                "mtime": pending.mtime, "meta": [list(p) for p in pending.meta],
                "replace": pending.replace, "keep_class": store.keep_class}
        store.in_flight[pending.seq] = pending
        self.spooled += pending.size
        try:
            store.helper.send(("put", pending.seq, spec))
        except (OSError, ValueError):
            self._helper_died(store, "the upload process ended unexpectedly")

    def abandon(self):
        """Drop the object being written (write error, cancel)."""
        pending = self.current
        self.current = None
        self._drop(pending)

    def _drop(self, pending):
        if pending is not None and pending.part is not None:
            part, pending.part = pending.part, None
            part.discard()

    # -- the upload helpers --------------------------------------------------------------------
    def _config(self, store):
        opts = store.opts
        return {
            "provider": opts.provider,
            "driver_kwargs": opts.driver_kwargs,
            "ca_file": opts.ca_file,
            "timeout": opts.timeout,
            "retries": opts.retries,
            "retry_max_wait": opts.retry_max_wait,
            "secrets": opts.secrets,
            "threads": max(1, min(opts.nb_prefetcher, 16)),
        }

    def _ensure_helper(self, store):
        """An upload helper for the store; False (``why_not`` says why) when none can run."""
        if store.helper is not None:
            return True
        if store.why_not is not None:
            return False
        if store.starts >= HELPER_STARTS:
            store.why_not = "%d upload processes were started and ended" % store.starts
            return False
        store.starts += 1
        try:
            helper = Helper("bareos-libcloud-upload", uploader_main, self._config(store), self.python,
                            self.cancelled)
        except HelperStartError as exc:
            store.why_not = self.setup_error = str(exc)  # the interpreter cannot run helpers: fatal
            return False
        deadline = time.monotonic() + max(60.0, store.opts.timeout)
        while not helper.ready(0.2):
            if self.cancelled.is_set() or time.monotonic() > deadline or not helper.process.is_alive():
                helper.stop(grace=0.5)
                store.why_not = "the upload process did not start"
                if not self.cancelled.is_set():
                    self.setup_error = store.why_not
                return False
        try:
            reply = helper.conn.recv()
        except (EOFError, OSError):
            reply = ("fatal", "the upload process ended at its start")
        if reply[0] != "ready":
            helper.stop(grace=0.5)
            store.why_not = reply[1] if len(reply) > 1 else "the upload process did not start"
            self.setup_error = store.why_not  # options or credentials: it does not heal (the plugin ends the job)
            return False
        store.helper = helper
        return True

    def pump(self, timeout):
        """Take the upload helpers' answers (waiting up to ``timeout`` seconds for the first)."""
        if self.cancelled.is_set() and not self.cancel_sent:
            self.cancel_sent = True
            for store in self.stores.values():
                if store.helper is not None:
                    try:
                        store.helper.send(("cancel",))
                    except (OSError, ValueError):
                        pass
        waited = False
        for store in list(self.stores.values()):
            helper = store.helper
            if helper is None:
                continue
            try:
                while helper.ready(0.0 if waited else timeout):
                    waited = True
                    self._answer(store, helper.conn.recv())
                    if store.helper is not helper:
                        break
            except (EOFError, OSError):
                self._helper_died(store, "the upload process ended unexpectedly")

    def _answer(self, store, message):
        kind = message[0]
        if kind in (RETRIED, RESUMED):
            self.faults.count(kind, message[1])
            return
        if kind == "debug":
            self.log.debug(message[1])
            return
        if kind == "note":
            self.log.info(message[1])
            return
        if kind == "fatal":
            self._helper_died(store, message[1])
            return
        pending = store.in_flight.get(message[1])
        if pending is None or message[2] != pending.key:
            self._helper_died(store, "the upload process answered for another object (%r)" % (message[:3],))
            return
        del store.in_flight[message[1]]
        self.spooled -= pending.size
        if kind == "stored":
            self.stored += 1
            self.bytes_stored += pending.size
            self.log.debug("uploaded %s" % pending.label)
        elif kind == "kept":
            self.kept += 1
            self.log.info("not restored: %s: %s" % (pending.label, message[3]))
        else:
            self._failed(pending, message[3])
        self._drop(pending)

    def _failed(self, pending, why):
        self.failed += 1
        self.log.error("%s could not be restored: %s" % (pending.label, why))

    def _helper_died(self, store, why):
        helper, store.helper = store.helper, None
        if helper is not None:
            helper.stop(grace=0.2)
        for pending in store.in_flight.values():
            self.spooled -= pending.size
            if not self.cancelled.is_set():
                self._failed(pending, why)
            self._drop(pending)
        store.in_flight.clear()

    # -- the job's end -------------------------------------------------------------------------
    def finish(self):
        """Wait for every upload, end the helpers, remove the spool; the summary goes to the log."""
        self.abandon()
        deadline = None
        while any(store.in_flight for store in self.stores.values()):
            if self.cancelled.is_set():
                deadline = deadline or time.monotonic() + CANCEL_GRACE
                if time.monotonic() > deadline:
                    break
            self.pump(0.2)
        for store in self.stores.values():
            if store.helper is not None:
                store.helper.stop(grace=2.0)
                store.helper = None
            for pending in store.in_flight.values():
                self._drop(pending)
            store.in_flight.clear()
        if self.spool_dir is not None:
            shutil.rmtree(self.spool_dir, ignore_errors=True)
            self.spool_dir = None
        if not self.stores:
            return
        text = "%s (%s) into buckets" % (_count(self.stored, "object", "uploaded"), size_text(self.bytes_stored))
        if self.kept:
            text += ", %s by the replace setting" % _count(self.kept, "object", "kept")
        if self.failed:
            text += ", %s" % _count(self.failed, "object", "not restored")
        faults = self.faults
        text += "; %s retried" % _count(faults.retried, "request", "")
        self.log.info(text.replace("  ", " "))


def _count(number, noun, verb):
    return "%d %s%s%s" % (number, noun, "" if number == 1 else "s", (" " + verb) if verb else "")
