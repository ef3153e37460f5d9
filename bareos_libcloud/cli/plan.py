"""``plan``: the memory and helper processes a job takes with these options, and a rough duration."""

import os
import random
import time

from ..job.backup import size_text
from ..job.joblog import plural
from ..job.prefetch import GROWTH_SLACK, SLOTS_PER_HELPER
from ..retry import RetryPolicy
from .common import BAD, OK, fmt_mib, fmt_seconds, line_label
from .walk import LineWalk, selection_label


#: Peak RSS (VmHWM) of one process of each kind, in MiB, as measured in performance-sample.md
#: (the memory-cap run, "per process (VmHWM)": baseline and after a listing of 90,000 objects
#: or objects just under prefetch_size).  They share the fork server's pages, so what the
#: machine pays (PSS) is less than their sum.
PROCESS_MIB = {
    "fork server": 37,  # one per job: the interpreter (python=) with libcloud imported
    "resource tracker": 13,  # multiprocessing's, one per job
    "lister": 36,  # libcloud-list, one per Plugin line (28 MiB, 36 after 90,000 objects)
    "signer": 30,  # libcloud-sign, one per line with objects >= prefetch_size (S3 family)
    "fetch helper": 33,  # libcloud-fetch, one per 64 transfers (nb_prefetcher) of a line; objects come on top
}
#: The plugin's client CPU per object in a full backup, ms (performance-sample.md, (a)/(c)).
CPU_MS_PER_OBJECT = 1.05
SAMPLE_OBJECTS = 20
SAMPLE_SECONDS = 10.0
#: Objects this large or larger tell the transfer rate in the sample; smaller ones the time per object.
LARGE = 1 << 20


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
    from ..helper.fetch import FetchError, ObjectVanished, read_object

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


def fetch_helpers(opts):
    """Fetch helper processes of a line: one per SLOTS_PER_HELPER transfers in flight."""
    return -(-opts.nb_prefetcher // SLOTS_PER_HELPER)


def memory_plan(lines, signer_lines=None):
    """``(MiB of the processes, bytes of objects, [(what, count, MiB each)])`` at the job's peak.

    Every line's lister runs from the job's start; fetch helpers (and the signer) run for the line
    being saved, and each line's pool has its own prefetch_memory.  ``signer_lines``: the lines
    with objects of prefetch_size or more (all, when not known).  The objects' bound is
    docs/design.md's: prefetch_memory + the object Bareos waits for + 256 KiB per transfer.
    """
    rows = [("fork server", 1, PROCESS_MIB["fork server"]),
            ("resource tracker", 1, PROCESS_MIB["resource tracker"]),
            ("lister (libcloud-list), one per Plugin line", len(lines), PROCESS_MIB["lister"])]
    worst = None
    for line in lines:
        opts = line.opts
        signer = signer_lines is None or line in signer_lines
        processes = fetch_helpers(opts) * PROCESS_MIB["fetch helper"] + (PROCESS_MIB["signer"] if signer else 0)
        objects = opts.prefetch_memory + opts.prefetch_size + opts.nb_prefetcher * GROWTH_SLACK
        if worst is None or processes * (1 << 20) + objects > worst[0] * (1 << 20) + worst[1]:
            worst = (processes, objects, line, signer)
    processes, objects, line, signer = worst
    rows.append(("fetch helpers (libcloud-fetch)", fetch_helpers(line.opts), PROCESS_MIB["fetch helper"]))
    if signer:
        rows.append(("signer (libcloud-sign)", 1, PROCESS_MIB["signer"]))
    return sum(count * each for _, count, each in rows), objects, line, rows


def cmd_plan(lines, args, report):
    from ..job.helpers import python_executable

    report.out("plan of %s" % selection_label(args, lines.lines[0].opts))
    rnd = random.Random()
    walks, signer_lines = [], []
    for line in lines:
        sample = Sample(args.sample, rnd)
        walk = LineWalk(line, args.since_epoch, args.accurate, report, line_label(lines, line), sample.offer).run()
        if sample.streamed and _signs(walk.drv):
            signer_lines.append(line)
        walks.append((walk, sample))

    process_mib, object_bytes, worst, rows = memory_plan(lines, signer_lines)
    report.out("memory at the job's peak: about %s" % fmt_mib(process_mib * (1 << 20) + object_bytes))
    for what, count, each in rows:
        report.out("  %-46s %3d x %2d MiB = %4d MiB" % (what, count, each, count * each))
    report.out("  objects in flight: prefetch_memory %s + the object Bareos waits for (under prefetch_size) "
               "+ 256 KiB a transfer = %s" % (fmt_mib(worst.opts.prefetch_memory), fmt_mib(object_bytes)))
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
            walk.where or "the job", plural(totals["saved"], "object"), size_text(totals["saved_bytes"]),
            plural(totals["listed"], "object"), walk.seconds))
        report.out("  %d prefetched, up to %d at a time, %d streamed (prefetch_size %s or more)"
                   % (totals["saved"] - totals["streamed"], opts.nb_prefetcher, totals["streamed"],
                      size_text(opts.prefetch_size)))
        _duration(walk, sample, args, report)
    return BAD if report.problems else OK


def _signs(drv):
    """Whether large objects would be read by the job itself, with GETs a signer signs."""
    from ..helper.driver import is_s3_family, uses_lean_transport

    return is_s3_family(drv) and uses_lean_transport(drv)


def _duration(walk, sample, args, report):
    opts = walk.line.opts
    if not sample.seen:
        report.out("  rough duration: the listing's, %s" % fmt_seconds(walk.seconds))
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
               % (fmt_seconds(estimate), plural(timing.gets, "sample GET"), size_text(timing.bytes), timing.seconds,
                  timing.per_small_object * 1000,
                  "%s/s a stream" % size_text(rate) if rate else "no transfer rate (no object of 1 MiB or more read)"))
    report.out("  (assumes each of the %d transfers in flight gets what one sample GET got, objects of "
               "prefetch_size or more are read one at a time, and at least %.2f ms of CPU per object on %s; "
               "Bareos's own writing to the storage daemon is not counted)"
               % (opts.nb_prefetcher, CPU_MS_PER_OBJECT, plural(cores, "core")))
