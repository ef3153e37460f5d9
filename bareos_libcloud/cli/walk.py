"""``ls`` and ``size``: what a Full (or an Incremental since a time) would save, from the job's own listing."""

import re
import time

from .. import naming
from ..job.backup import PREFETCH, STREAM, ChangePolicy, size_text
from ..job.joblog import plural
from ..options import OptionError, parse_duration
from ..timeutil import to_epoch
from .common import BAD, OK, fmt_when, line_label, connect, retry_policy

class BucketCount:
    """Objects and bytes of one bucket: listed, and what the job saves (``saved``)."""

    def __init__(self, name):
        self.name = name
        self.listed = self.listed_bytes = 0
        self.saved = self.saved_bytes = 0
        self.streamed = self.streamed_bytes = 0  # of the saved: objects >= prefetch_size
        self.complete = False


class LineWalk:
    """One line's listing through the job's lister code, planned by the job's ChangePolicy."""

    def __init__(self, line, since, accurate, report, where, on_object=None):
        self.line = line
        self.policy = ChangePolicy(since, accurate, line.opts.prefetch_size, False, line.opts.incremental_margin)
        self.report = report
        self.where = where
        self.on_object = on_object  # (bucket, key, size, mtime, etag, md5, streamed)
        self.buckets = {}
        self.order = []
        self.failed = False
        self.counts = {}
        self.seconds = 0.0
        self.drv = None

    def run(self):
        from ..helper.listing import list_all

        opts = self.line.opts
        self.drv, config = connect(self.line, self.report, self.where)
        started = time.monotonic()
        listed = 0
        for message in list_all(self.drv, config, retry_policy(opts, self.counts)):
            kind = message[0]
            if kind == "entries":
                listed += len(message[2])
                self._entries(message[1], message[2])
                self.report.progress("listing %s: %s" % (message[1], plural(listed, "object")))
            elif kind == "ready":
                for name in message[1]:
                    self._bucket(name)
            elif kind == "bucket_done":
                self._bucket(message[1]).complete = True
            elif kind == "bucket_failed":
                self.failed = True
                self.report.problem("error", "listing bucket %r failed, the figures are short of it: %s"
                                    % (message[1], message[2]), self.where)
            elif kind == "fatal":
                self.failed = True
                self.report.problem("error", message[1], self.where)
            elif kind in ("warning", "error"):
                self.report.problem(kind, message[1], self.where)
        self.seconds = time.monotonic() - started
        self.report.clear_progress()
        if self.counts:
            self.report.problem("warning", "the object store failed %s that were retried"
                                % plural(sum(self.counts.values()), "request"), self.where)
        return self

    def _bucket(self, name):
        count = self.buckets.get(name)
        if count is None:
            count = self.buckets[name] = BucketCount(name)
            self.order.append(count)
        return count

    def _entries(self, bucket, entries):
        count = self._bucket(bucket)
        plan, on_object = self.policy.plan, self.on_object
        for key, size, mtime, etag, md5, _ in entries:
            count.listed += 1
            count.listed_bytes += size
            decision = plan(size, mtime)
            if decision not in (PREFETCH, STREAM):
                continue
            count.saved += 1
            count.saved_bytes += size
            if decision == STREAM:
                count.streamed += 1
                count.streamed_bytes += size
            if on_object is not None:
                on_object(bucket, key, size, mtime, etag, md5, decision == STREAM)

    def totals(self):
        fields = ("listed", "listed_bytes", "saved", "saved_bytes", "streamed", "streamed_bytes")
        return {f: sum(getattr(b, f) for b in self.order) for f in fields}


def parse_since(value, now=None):
    """``--since``: a date and time (UTC unless it names a zone), ``@EPOCH``, or a duration ago
    (``36h``, ``7d``); returns epoch seconds."""
    text = value.strip()
    now = time.time() if now is None else now
    if re.match(r"^\d+\s*[smhd]$", text, re.IGNORECASE):
        return int(now) - parse_duration("--since", text)
    if re.match(r"^@\d+$", text):
        return int(text[1:])
    try:
        return to_epoch(text)
    except ValueError as exc:
        raise OptionError("--since %r is not a date (e.g. 2024-05-01, '2024-05-01 12:00:00+02:00', "
                          "@1714521600 or 36h): %s" % (value, exc)) from None


def selection_label(args, opts):
    """How the figures are meant: a Full, or an Incremental since a time."""
    if not args.since_epoch:
        return "a Full"
    if args.accurate:
        return "an accurate Incremental since %s" % fmt_when(args.since_epoch)
    return ("an Incremental since %s, less incremental_margin %d s (objects modified since %s)"
            % (fmt_when(args.since_epoch), opts.incremental_margin,
               fmt_when(max(args.since_epoch - opts.incremental_margin, 1))))


def _walks(lines, args, report, on_object=None):
    for line in lines:
        walk = LineWalk(line, args.since_epoch, args.accurate, report, line_label(lines, line),
                        on_object(line) if on_object else None)
        yield walk.run()


def cmd_ls(lines, args, report):
    def printer(line):
        def show(bucket, key, size, mtime, etag, md5, streamed):
            try:
                name = naming.object_fname(bucket, key)
            except naming.BadName as exc:
                report.problem("error", "object %r in bucket %r cannot be named: %s" % (key, bucket, exc))
                return
            report.out("%12d  %s  %s" % (size, fmt_when(mtime), name))

        return show

    for _ in _walks(lines, args, report, printer):
        pass
    return BAD if report.problems else OK


def cmd_size(lines, args, report):
    all_saved = all_bytes = 0
    for walk in _walks(lines, args, report):
        prefix = "%s: " % walk.where if walk.where else ""
        report.out("%swhat %s saves:" % (prefix, selection_label(args, walk.line.opts)))
        for count in walk.order:
            report.out("  " + _bucket_line(count, args.since_epoch))
        totals = walk.totals()
        all_saved += totals["saved"]
        all_bytes += totals["saved_bytes"]
        report.out("  total: %s, %s, %s (%d bytes)%s" % (
            plural(len(walk.order), "bucket"), plural(totals["listed"], "object") + " listed",
            plural(totals["saved"], "object") + " saved, " + size_text(totals["saved_bytes"]),
            totals["saved_bytes"], "; INCOMPLETE: a listing failed" if walk.failed else ""))
    if len(lines) > 1:
        report.out("all lines: %s, %s (%d bytes)" % (plural(all_saved, "object"), size_text(all_bytes), all_bytes))
    return BAD if report.problems else OK


def _bucket_line(count, since):
    saved = "%s, %s (%d bytes)" % (plural(count.saved, "object"), size_text(count.saved_bytes), count.saved_bytes)
    if since:
        saved += "; %d of %s unchanged" % (count.listed - count.saved, plural(count.listed, "object"))
    return "%s: %s%s" % (count.name, saved, "" if count.complete else " (listing incomplete)")
