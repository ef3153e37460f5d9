"""What the commands share: the option string as the job gets it, the report, the job's code on one line."""

import math
import re
import sys
import time

from ..job import backup
from ..job.backup import ChangePolicy, size_text
from ..job.joblog import JobLog
from ..job.lines import PluginLines
from ..job.plugin import _raw_secrets
from ..options import OptionError, fd_text
from ..retry import RetryPolicy


OK, BAD, BAD_OPTIONS = 0, 1, 2


class Stop(Exception):
    """End the command with ``status`` (the message has been printed)."""

    def __init__(self, status):
        super().__init__(status)
        self.status = status


# -- the option string as the job gets it -------------------------------------------------------
def job_text(text):
    """The option text python3-fd hands the plugin for the FileSet string ``text`` (options.fd_text)."""
    return fd_text(text)


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


def fmt_mib(count):
    return "%.0f MiB" % (count / float(1 << 20)) if count >= 1 << 20 else size_text(count)


def fmt_when(epoch):
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch)) if epoch is not None else "-"


def fmt_seconds(value):
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
    from ..helper.driver import DriverSetupError, make_driver

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


def line_label(lines, line):
    return line.describe() if len(lines) > 1 else None


def name_list(names, limit=20):
    shown = ", ".join(names[:limit])
    return shown + (" and %d more" % (len(names) - limit) if len(names) > limit else "")
