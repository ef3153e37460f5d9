"""``check``: the options, the connection, the credentials and the buckets a line selects."""

import re
import sys

from ..job.joblog import plural
from .common import BAD, OK, name_list, line_label, connect, retry_policy

def cmd_check(lines, args, report):
    _check_libcloud(lines, report)
    for line in lines:
        where = line_label(lines, line)
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
    from ..helper.listing import list_all

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
                                                               name_list(message[1])), where)
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
