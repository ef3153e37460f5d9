"""``bareos-libcloud``: what a FileSet's ``Plugin =`` line will do, before the first job runs.

    bareos-libcloud check 'python3:module_name=bareos-fd-libcloud:provider=S3:credentials_file=...'
    bareos-libcloud size --file /etc/bareos/photos.plugin --since 2024-05-01
    python3 -m bareos_libcloud plan 'provider=S3_RGW:...'

It takes the very option string of the ``Plugin =`` line (with or without the ``python3:``,
``module_path`` and ``module_name`` parts, which bareos-fd strips before the plugin sees the
rest) and runs the job's own code on it: the options are validated by ``lines.build_options``
(one line after the other, as the job does), the driver is made by ``driver.make_driver``, and
buckets and objects come from ``listing.list_all``, the lister's generator, which applies
buckets_include/buckets_exclude, prefix and shard exactly as in a job.  What an Incremental
would save is decided by ``backup.ChangePolicy`` with the line's ``incremental_margin``.

This is an ordinary Python process, not bareos-fd: libcloud runs here in-process.

Exit status: 0 fine, 1 problems (a warning or an error the job would report, or a failed
connection), 2 bad options (the job would fail at its start).  No secret is ever printed.
"""

import argparse
import math
import os
import random
import re
import sys
import time

from . import __version__, naming
from . import backup
from .backup import PREFETCH, STREAM, ChangePolicy, _size
from .joblog import JobLog, plural
from .lines import PluginLines
from .options import OptionError, parse_duration
from .plugin import _raw_secrets
from .prefetch import GROWTH_SLACK
from .retry import RetryPolicy
from .timeutil import to_epoch

OK, BAD, BAD_OPTIONS = 0, 1, 2

#: Peak RSS (VmHWM) of one process of each kind, in MiB, as measured in performance-sample.md
#: (the memory-cap run, "per process (VmHWM)": baseline and after a listing of 90,000 objects
#: or objects just under prefetch_size).  They share the fork server's pages, so what the
#: machine pays (PSS) is less than their sum.
PROCESS_MIB = {
    "fork server": 29,  # one per job: the interpreter (python=) with libcloud imported
    "resource tracker": 11,  # multiprocessing's, one per job
    "lister": 36,  # libcloud-list, one per Plugin line (31 MiB, 36 after 90,000 objects)
    "signer": 30,  # libcloud-sign, one per line with objects >= prefetch_size (S3 family)
    "prefetcher": 38,  # libcloud-fetch, up to nb_prefetcher per line (30 MiB, 38 after 10 MiB objects)
}
#: The plugin's client CPU per object in a full backup, ms (performance-sample.md, (a)/(c)).
CPU_MS_PER_OBJECT = 1.05
SAMPLE_OBJECTS = 20
SAMPLE_SECONDS = 10.0
#: Objects this large or larger tell the transfer rate in the sample; smaller ones the time per object.
LARGE = 1 << 20


class Stop(Exception):
    """End the command with ``status`` (the message has been printed)."""

    def __init__(self, status):
        super().__init__(status)
        self.status = status


# -- the option string as the job gets it -------------------------------------------------------
def job_text(text):
    """The option text python3-fd hands the plugin for the FileSet string ``text``.

    python-fd.cc's parse_plugin_definition: the part before the first ``:`` is the plugin's name
    (``python3``) and goes; ``module_path`` and ``module_name`` (names compared as it does: any
    case, and a prefix of them counts) go; the rest is passed on with a trailing ``:``.  Pairs
    split on a ``:`` not preceded by a backslash.  A string that begins with an option
    (``provider=...``) has no plugin name to drop.
    """
    parts = re.split(r"(?<!\\):", text.strip())
    if parts and "=" not in parts[0]:
        parts = parts[1:]
    kept = []
    for part in parts:
        if not part.strip():
            continue
        name = part.split("=", 1)[0].strip().lower()
        if name and ("module_path".startswith(name) or "module_name".startswith(name)):
            continue
        kept.append(part)
    return ":".join(kept) + ":" if kept else ""


def read_plugin_file(path):
    """The plugin strings in the file ``path``.

    Either the FileSet's own text (``Plugin = "..." "..."`` statements, their quoted pieces
    joined and unescaped as the director's parser does, so ``\\\\:`` is ``\\:``), or one option
    string per line (``#`` comments and blank lines ignored).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise OptionError("--file %r cannot be read: %s" % (path, getattr(exc, "strerror", None) or exc)) from None
    quoted = r'"(?:[^"\\]|\\.)*"'
    statements = re.findall(r"^\s*Plugin\s*=\s*(%s(?:\s*%s)*)" % (quoted, quoted), text,
                            re.IGNORECASE | re.MULTILINE)
    if statements:
        return ["".join(re.sub(r"\\(.)", r"\1", piece[1:-1], flags=re.DOTALL)
                        for piece in re.findall(quoted, statement, re.DOTALL))
                for statement in statements]
    found = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not found:
        raise OptionError("--file %r holds no plugin string" % path)
    return found


# -- output ---------------------------------------------------------------------------------------
class Report:
    """Every line the command prints, secrets masked; counts the problems."""

    def __init__(self):
        self.log = JobLog(None)  # its scrub() masks the secrets, as in the job's messages
        self.problems = 0
        self.progress_shown = False
        self.progress_at = 0.0
        self.tty = sys.stderr.isatty()

    def secrets(self, secrets):
        self.log.configure(tuple(self.log.secrets) + tuple(secrets), False)

    def out(self, text):
        self.clear_progress()
        print(self.log.scrub(text), flush=True)

    def finding(self, severity, text, where=None):
        """One line of ``check`` (stdout); ``where``: the Plugin line when there are several."""
        if severity != "ok":
            self.problems += 1
        self.out("%s: %s%s" % (severity, "%s: " % where if where else "", text))

    def problem(self, severity, text, where=None):
        """A warning or error of ls/size/plan: on stderr, so stdout stays the listing."""
        self.problems += 1
        self.clear_progress()
        print(self.log.scrub("%s: %s%s" % (severity, "%s: " % where if where else "", text)),
              file=sys.stderr, flush=True)

    def progress(self, text, force=False):
        """A progress line on stderr, only on a terminal, at most 4 times a second."""
        if not self.tty:
            return
        now = time.monotonic()
        if not force and now - self.progress_at < 0.25:
            return
        self.progress_at = now
        sys.stderr.write("\r\033[K" + self.log.scrub(text))
        sys.stderr.flush()
        self.progress_shown = True

    def clear_progress(self):
        if self.progress_shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self.progress_shown = False


def _mib(count):
    return "%.0f MiB" % (count / float(1 << 20)) if count >= 1 << 20 else _size(count)


def _when(epoch):
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch)) if epoch is not None else "-"


def _seconds(value):
    value = max(0.0, value)
    if value < 90:
        return "%.0f s" % math.ceil(value)
    if value < 5400:
        return "%.0f min" % math.ceil(value / 60)
    return "%.1f h" % (value / 3600)


# -- the job's code on one line --------------------------------------------------------------------
def load_lines(texts, report):
    """The FileSet's lines, validated as the job does (PluginLines.add); Stop(2) on bad options."""
    lines = PluginLines()
    for number, text in enumerate(texts, 1):
        options = job_text(text)
        report.secrets(_raw_secrets(options))
        if not options:
            report.out("bad options: plugin string %d holds no option" % number)
            raise Stop(BAD_OPTIONS)
        try:
            lines.add(options, need_remote=True)
        except OptionError as exc:
            where = " of Plugin line %d" % number if len(texts) > 1 else ""
            report.out("bad options%s: %s" % (where, exc))
            raise Stop(BAD_OPTIONS) from None
        report.secrets(lines.lines[-1].opts.secrets)
    return lines


def lister_config(opts):
    """The configuration the job's lister process gets for these options."""
    return backup.lister_config(opts, ChangePolicy(0, False, opts.prefetch_size, True), int(time.time()))


def connect(line, report, where):
    """``(driver, config)`` for the line, made by the job's driver.make_driver; Stop(2) when the
    options are refused (an unknown option, a bad provider), as the job's helper would."""
    from .driver import DriverSetupError, make_driver

    opts = line.opts
    config = lister_config(opts)
    try:
        drv = make_driver(opts.provider, opts.driver_kwargs, opts.timeout, opts.ca_file)
    except DriverSetupError as exc:
        report.out("bad options%s: %s" % (" of %s" % where if where else "", exc))
        raise Stop(BAD_OPTIONS) from None
    return drv, config


def retry_policy(opts, counts):
    def count(kind, text):
        counts[kind] = counts.get(kind, 0) + 1

    return RetryPolicy(opts.retries, opts.retry_max_wait, count=count)


def _where(lines, line):
    return line.describe() if len(lines) > 1 else None


def _names(names, limit=20):
    shown = ", ".join(names[:limit])
    return shown + (" and %d more" % (len(names) - limit) if len(names) > limit else "")


# -- check -------------------------------------------------------------------------------------------
def cmd_check(lines, args, report):
    _check_libcloud(lines, report)
    for line in lines:
        where = _where(lines, line)
        opts = line.opts
        for text in opts.warnings:
            report.finding("warning", text, where)
        drv, config = connect(line, report, where)
        report.finding("ok", "options valid: provider %s%s" % (opts.provider, _selection(opts)), where)
        counts = {}
        _check_access(line, drv, config, retry_policy(opts, counts), report, where)
        if counts:
            report.finding("warning", "the object store failed %s that were retried (%s)"
                           % (plural(sum(counts.values()), "request"), ", ".join(sorted(counts))), where)
    conflict = lines.conflict()
    if conflict:
        report.finding("error", conflict)
    return BAD if report.problems else OK


def _selection(opts):
    parts = ["buckets " + (",".join(opts.buckets_include) if opts.buckets_include else "all")]
    if opts.buckets_exclude:
        parts.append("except " + ",".join(opts.buckets_exclude))
    if opts.prefix:
        parts.append("prefix %r" % opts.prefix)
    if opts.shard:
        parts.append("shard %d/%d" % opts.shard)
    return ", " + ", ".join(parts)


class _Listed:
    """What lines.conflict() reads of a line's session: the buckets its lister selected."""

    def __init__(self, buckets):
        self.buckets = buckets


def _check_access(line, drv, config, retry, report, where):
    """The job's start, as its lister does it, up to the first object the line selects."""
    from .listing import list_all

    messages = list_all(drv, config, retry)
    try:
        for message in messages:
            kind = message[0]
            if kind == "fatal":
                report.finding("error", message[1], where)
                return
            if kind in ("warning", "error"):
                report.finding(kind, message[1], where)
            elif kind == "ready":
                line.session = _Listed(message[1])
                report.finding("ok", "connected, credentials accepted", where)
                if message[1]:
                    report.finding("ok", "%s selected: %s" % (plural(len(message[1]), "bucket"),
                                                               _names(message[1])), where)
            elif kind == "entries":
                report.finding("ok", "objects found: bucket %r can be listed" % message[1], where)
                return
            elif kind == "bucket_failed":
                report.finding("error", "listing bucket %r failed: %s" % (message[1], message[2]), where)
            elif kind == "done":
                hint = " (keys rarely begin with '/')" if (line.opts.prefix or "").startswith("/") else ""
                report.finding("error", "the line selects no object at all: a backup would hold nothing of "
                                        "it; check buckets_include, buckets_exclude and prefix%s" % hint, where)
    finally:
        messages.close()


def _check_libcloud(lines, report):
    """libcloud's version here, and the interpreter named by ``python=`` (the helpers' one)."""
    import libcloud

    report.finding(*_libcloud_verdict(libcloud.__version__, "this interpreter (%s)" % sys.executable))
    for python in sorted({line.opts.python for line in lines if line.opts.python}):
        report.finding(*_interpreter_verdict(python))


def _libcloud_verdict(version, where):
    numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:3])
    if (3, 9, 1) <= numbers < (4,):
        return "ok", "apache-libcloud %s in %s" % (version, where)
    return "warning", "apache-libcloud %s in %s: supported are 3.9.1 and later 3.x" % (version, where)


def _interpreter_verdict(python):
    import subprocess

    probe = "import bareos_libcloud, libcloud; print(libcloud.__version__)"
    try:
        done = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return "error", "python=%s cannot be run: %s" % (python, exc)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["exit status %d" % done.returncode])[-1]
        return "error", "python=%s cannot import the plugin and libcloud: %s" % (python, last)
    return _libcloud_verdict(done.stdout.strip(), "python=%s" % python)


# -- ls, size, plan: the listing -------------------------------------------------------------------
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
        from .listing import list_all

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
        for key, size, mtime, etag, md5 in entries:
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


def _what(args, opts):
    """How the figures are meant: a Full, or an Incremental since a time."""
    if not args.since_epoch:
        return "a Full"
    if args.accurate:
        return "an accurate Incremental since %s" % _when(args.since_epoch)
    return ("an Incremental since %s, less incremental_margin %d s (objects modified since %s)"
            % (_when(args.since_epoch), opts.incremental_margin,
               _when(max(args.since_epoch - opts.incremental_margin, 1))))


def _walks(lines, args, report, on_object=None):
    for line in lines:
        walk = LineWalk(line, args.since_epoch, args.accurate, report, _where(lines, line),
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
            report.out("%12d  %s  %s" % (size, _when(mtime), name))

        return show

    for _ in _walks(lines, args, report, printer):
        pass
    return BAD if report.problems else OK


def cmd_size(lines, args, report):
    all_saved = all_bytes = 0
    for walk in _walks(lines, args, report):
        prefix = "%s: " % walk.where if walk.where else ""
        report.out("%swhat %s saves:" % (prefix, _what(args, walk.line.opts)))
        for count in walk.order:
            report.out("  " + _bucket_line(count, args.since_epoch))
        totals = walk.totals()
        all_saved += totals["saved"]
        all_bytes += totals["saved_bytes"]
        report.out("  total: %s, %s, %s (%d bytes)%s" % (
            plural(len(walk.order), "bucket"), plural(totals["listed"], "object") + " listed",
            plural(totals["saved"], "object") + " saved, " + _size(totals["saved_bytes"]),
            totals["saved_bytes"], "; INCOMPLETE: a listing failed" if walk.failed else ""))
    if len(lines) > 1:
        report.out("all lines: %s, %s (%d bytes)" % (plural(all_saved, "object"), _size(all_bytes), all_bytes))
    return BAD if report.problems else OK


def _bucket_line(count, since):
    saved = "%s, %s (%d bytes)" % (plural(count.saved, "object"), _size(count.saved_bytes), count.saved_bytes)
    if since:
        saved += "; %d of %s unchanged" % (count.listed - count.saved, plural(count.listed, "object"))
    return "%s: %s%s" % (count.name, saved, "" if count.complete else " (listing incomplete)")


# -- plan ---------------------------------------------------------------------------------------------
class Sample:
    """What the plan needs of the objects the job saves, gathered as they stream by: counts by
    kind, up to ``size`` of them picked evenly at random, and the largest one."""

    def __init__(self, size, rnd):
        self.size = size
        self.rnd = rnd
        self.seen = 0
        self.items = []
        self.largest = None
        self.small = self.mid = self.mid_bytes = self.streamed = self.streamed_bytes = 0

    def offer(self, bucket, key, size, mtime, etag, md5, streamed):
        item = (bucket, key, size, mtime, etag, md5)
        if streamed:
            self.streamed += 1
            self.streamed_bytes += size
        elif size >= LARGE:
            self.mid += 1
            self.mid_bytes += size
        else:
            self.small += 1
        if size >= LARGE and (self.largest is None or size > self.largest[2]):
            self.largest = item
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
        else:
            slot = self.rnd.randrange(self.seen)
            if slot < self.size:
                self.items[slot] = item

    def to_read(self):
        """The random ones, smallest first, then the largest object (for a transfer rate)."""
        items = sorted(self.items, key=lambda item: item[2])
        if self.largest is not None and self.size:
            if self.largest in items:
                items.remove(self.largest)
            items = items[: self.size - 1] + [self.largest]
        return items


class Timing:
    """What the sample GETs took: per object under LARGE (request to last byte), the time to
    the first byte, and the transfer rate of the bytes of objects of LARGE or more."""

    def __init__(self):
        self.gets = self.small_gets = 0
        self.first_byte = self.small_seconds = 0.0
        self.large_bytes = 0
        self.large_seconds = 0.0
        self.bytes = 0
        self.seconds = 0.0

    def add(self, size, first_byte, got, reading):
        self.gets += 1
        self.first_byte += first_byte
        self.bytes += got
        self.seconds += first_byte + reading
        if size < LARGE:
            self.small_gets += 1
            self.small_seconds += first_byte + reading
        elif got:
            self.large_bytes += got
            self.large_seconds += reading

    @property
    def latency(self):
        return self.first_byte / self.gets

    @property
    def per_small_object(self):
        return self.small_seconds / self.small_gets if self.small_gets else self.latency

    @property
    def rate(self):
        """Bytes per second of one stream, or None (no object of LARGE or more was read)."""
        return self.large_bytes / self.large_seconds if self.large_seconds > 0 else None


def measure_gets(drv, opts, items, seconds, report, where):
    """Read ``items`` with the job's fetch.read_object until done or ``seconds`` are up (the
    bytes are thrown away); returns a Timing."""
    from .fetch import FetchError, ObjectVanished, read_object

    deadline = time.monotonic() + seconds
    timing = Timing()
    for bucket, key, size, mtime, etag, md5 in items:
        if time.monotonic() >= deadline:
            break
        listed = {"size": size, "mtime": mtime, "etag": etag, "md5": md5}
        started = time.monotonic()
        reader = read_object(drv, bucket, key, listed, RetryPolicy(opts.retries, opts.retry_max_wait))
        got = 0
        try:
            next(reader)
            answered = time.monotonic()
            for _, chunk in reader:
                got += len(chunk)
                if time.monotonic() >= deadline:
                    break
        except ObjectVanished:
            continue
        except FetchError as exc:
            report.problem("warning", "a sample GET of %r in bucket %r failed: %s" % (key, bucket, exc), where)
            continue
        finally:
            reader.close()
        timing.add(size, answered - started, got, time.monotonic() - answered)
    return timing


def memory_plan(lines, signer_lines=None):
    """``(MiB of the processes, bytes of objects, [(what, count, MiB each)])`` at the job's peak.

    Every line's lister runs from the job's start; prefetchers (and the signer) run for the line
    being saved, and each line's pool has its own prefetch_memory.  ``signer_lines``: the lines
    with objects of prefetch_size or more (all, when not known).  The objects' bound is
    docs/design.md's: prefetch_memory + the object Bareos waits for + 256 KiB per helper.
    """
    rows = [("fork server", 1, PROCESS_MIB["fork server"]),
            ("resource tracker", 1, PROCESS_MIB["resource tracker"]),
            ("lister (libcloud-list), one per Plugin line", len(lines), PROCESS_MIB["lister"])]
    worst = None
    for line in lines:
        opts = line.opts
        signer = signer_lines is None or line in signer_lines
        processes = opts.nb_prefetcher * PROCESS_MIB["prefetcher"] + (PROCESS_MIB["signer"] if signer else 0)
        objects = opts.prefetch_memory + opts.prefetch_size + opts.nb_prefetcher * GROWTH_SLACK
        if worst is None or processes * (1 << 20) + objects > worst[0] * (1 << 20) + worst[1]:
            worst = (processes, objects, line, signer)
    processes, objects, line, signer = worst
    rows.append(("prefetch processes (libcloud-fetch)", line.opts.nb_prefetcher, PROCESS_MIB["prefetcher"]))
    if signer:
        rows.append(("signer (libcloud-sign)", 1, PROCESS_MIB["signer"]))
    return sum(count * each for _, count, each in rows), objects, line, rows


def cmd_plan(lines, args, report):
    from .helpers import python_executable

    report.out("plan of %s" % _what(args, lines.lines[0].opts))
    rnd = random.Random()
    walks, signer_lines = [], []
    for line in lines:
        sample = Sample(args.sample, rnd)
        walk = LineWalk(line, args.since_epoch, args.accurate, report, _where(lines, line), sample.offer).run()
        if sample.streamed and _signs(walk.drv):
            signer_lines.append(line)
        walks.append((walk, sample))

    process_mib, object_bytes, worst, rows = memory_plan(lines, signer_lines)
    report.out("memory at the job's peak: about %s" % _mib(process_mib * (1 << 20) + object_bytes))
    for what, count, each in rows:
        report.out("  %-46s %3d x %2d MiB = %4d MiB" % (what, count, each, count * each))
    report.out("  objects in flight: prefetch_memory %s + the object Bareos waits for (under prefetch_size) "
               "+ 256 KiB a helper = %s" % (_mib(worst.opts.prefetch_memory), _mib(object_bytes)))
    report.out("  (each process's peak RSS as measured in performance-sample.md; the helpers share the fork "
               "server's pages, so the machine pays less)")
    pythons = sorted({python_executable(line.opts.python) if line.opts.python else "the daemon's python"
                      for line in lines})
    report.out("helpers: run by %s, forked from one fork server per job; ps shows them as "
               "libcloud-list, libcloud-fetch and libcloud-sign" % " and ".join(pythons))

    for walk, sample in walks:
        totals = walk.totals()
        opts = walk.line.opts
        report.out("%s: %s to save, %s (%s listed in %.1f s)" % (
            walk.where or "the job", plural(totals["saved"], "object"), _size(totals["saved_bytes"]),
            plural(totals["listed"], "object"), walk.seconds))
        report.out("  %d prefetched by up to %d prefetch processes, %d streamed (prefetch_size %s or more)"
                   % (totals["saved"] - totals["streamed"], opts.nb_prefetcher, totals["streamed"],
                      _size(opts.prefetch_size)))
        _duration(walk, sample, args, report)
    return BAD if report.problems else OK


def _signs(drv):
    """Whether large objects would be read by the job itself, with GETs a signer signs."""
    from .driver import is_s3_family, uses_lean_transport

    return is_s3_family(drv) and uses_lean_transport(drv)


def _duration(walk, sample, args, report):
    opts = walk.line.opts
    if not sample.seen:
        report.out("  rough duration: the listing's, %s" % _seconds(walk.seconds))
        return
    if not args.sample:
        report.out("  rough duration: not measured (--sample 0)")
        return
    timing = measure_gets(walk.drv, opts, sample.to_read(), args.sample_seconds, report, walk.where)
    if not timing.gets:
        report.out("  rough duration: not measured (no sample GET succeeded)")
        return
    rate = timing.rate
    bytes_time = (lambda count: count / rate) if rate else (lambda count: 0.0)
    prefetched = (sample.small * timing.per_small_object + sample.mid * timing.latency
                  + bytes_time(sample.mid_bytes)) / opts.nb_prefetcher
    streamed = sample.streamed * timing.latency + bytes_time(sample.streamed_bytes)
    cores = os.cpu_count() or 1
    cpu_floor = sample.seen * CPU_MS_PER_OBJECT / 1000.0 / cores
    estimate = max(walk.seconds, prefetched + streamed, cpu_floor)
    report.out("  rough duration: %s, from %s (%s in %.1f s): %.0f ms an object under 1 MiB, %s"
               % (_seconds(estimate), plural(timing.gets, "sample GET"), _size(timing.bytes), timing.seconds,
                  timing.per_small_object * 1000,
                  "%s/s a stream" % _size(rate) if rate else "no transfer rate (no object of 1 MiB or more read)"))
    report.out("  (assumes each of the %d prefetch processes gets what one sample GET got, objects of "
               "prefetch_size or more are read one at a time, and at least %.2f ms of CPU per object on %s; "
               "Bareos's own writing to the storage daemon is not counted)"
               % (opts.nb_prefetcher, CPU_MS_PER_OBJECT, plural(cores, "core")))


# -- main ------------------------------------------------------------------------------------------------
COMMANDS = {
    "check": (cmd_check, "validate the options with the job's code, connect, confirm the credentials "
                         "and the buckets the line selects"),
    "ls": (cmd_ls, "list the objects a Full (or, with --since, an Incremental) saves, as Bareos names them"),
    "size": (cmd_size, "objects and bytes per bucket that a Full (or an Incremental, --since) saves"),
    "plan": (cmd_plan, "the job's processes and memory, and a rough duration from a few sample GETs"),
}


def parser():
    top = argparse.ArgumentParser(
        prog="bareos-libcloud",
        description="Check what a FileSet's bareos-libcloud Plugin = line will do, with the plugin's own code, "
                    "before the first job runs.",
        epilog="Exit status: 0 fine, 1 problems, 2 bad options. No secret is printed: give keys in "
               "credentials_file.")
    top.add_argument("--version", action="version", version="bareos-libcloud %s" % __version__)
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for name, (_, text) in COMMANDS.items():
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("plugin", nargs="*", metavar="PLUGIN_STRING",
                         help="the FileSet's Plugin = string (python3:module_name=...:provider=...), with or "
                              "without its python3, module_path and module_name parts; several: one per "
                              "Plugin = line of the FileSet")
        sub.add_argument("--file", "-f", metavar="FILE",
                         help="a file holding the plugin string(s): the FileSet's Plugin = statements, or "
                              "one option string per line")
        if name != "check":
            sub.add_argument("--since", metavar="WHEN",
                             help="what an Incremental since WHEN saves: a date and time (UTC unless a zone "
                                  "is given: 2024-05-01, '2024-05-01 12:00:00+02:00'), @EPOCH, or a time ago "
                                  "(36h, 7d)")
            sub.add_argument("--accurate", action="store_true",
                             help="with --since: the Job has Accurate = yes (no incremental_margin)")
        if name == "plan":
            sub.add_argument("--sample", type=int, default=SAMPLE_OBJECTS, metavar="N",
                             help="objects to GET for the duration (default %d; 0: none)" % SAMPLE_OBJECTS)
            sub.add_argument("--sample-seconds", type=float, default=SAMPLE_SECONDS, metavar="S",
                             help="time the sample GETs may take at most (default %d)" % SAMPLE_SECONDS)
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    report = Report()
    try:
        if args.file and args.plugin:
            report.out("bad options: give the plugin string or --file, not both")
            return BAD_OPTIONS
        if not args.file and not args.plugin:
            report.out("bad options: give the FileSet's plugin string (or --file FILE)")
            return BAD_OPTIONS
        try:
            texts = read_plugin_file(args.file) if args.file else args.plugin
            args.since_epoch = parse_since(args.since) if getattr(args, "since", None) else 0
        except OptionError as exc:
            report.out("bad options: %s" % exc)
            return BAD_OPTIONS
        if getattr(args, "sample", 0) < 0 or getattr(args, "sample_seconds", 0) < 0:
            report.out("bad options: --sample and --sample-seconds cannot be negative")
            return BAD_OPTIONS
        if getattr(args, "accurate", False) and not args.since_epoch:
            report.out("bad options: --accurate needs --since (a Full saves every object)")
            return BAD_OPTIONS
        lines = load_lines(texts, report)
        return COMMANDS[args.command][0](lines, args, report)
    except Stop as stop:
        return stop.status
    except KeyboardInterrupt:
        report.clear_progress()
        return 130
    except BrokenPipeError:  # `bareos-libcloud ls ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BAD
    except Exception as exc:  # noqa: BLE001 - one line, secrets masked, never a traceback
        report.problem("error", "%s: %s" % (type(exc).__name__, exc))
        return BAD
