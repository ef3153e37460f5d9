"""The FileSet's ``Plugin =`` lines of one job.

bareos-fd loads one module per job, however many ``Plugin =`` lines reach python3-fd: it calls
``parse_plugin_definition`` with each line's options at the FileSet command (before
``bEventEndFileSet``), then again with one line's options before that line's
``start_backup_file`` loop (the backup or estimate command).  Each line is backed up as Bareos
backs up several ``File =`` lines: with exactly its own options, selection and connection.

Two lines must not give the same Bareos name to different objects (a bucket of the same name on
two stores), nor both save one object: such a FileSet is refused at the job's start.
"""

from ..options import PLUGIN_OPTIONS, OptionSet, plugin_text, split_plugin_string


class PluginLine:
    """One ``Plugin =`` line: its option text, validated options and (during a backup) session."""

    def __init__(self, number, text, opts):
        self.number = number
        self.text = text
        self.opts = opts
        self.session = None
        self.ended = False

    def describe(self):
        """How job messages name the line: ``Plugin line 2 (buckets photos, prefix '2024/')``."""
        opts = self.opts
        parts = ["buckets " + (",".join(opts.buckets_include) if opts.buckets_include else "all")]
        if opts.prefix:
            parts.append("prefix %r" % opts.prefix)
        if opts.shard:
            parts.append("shard %d/%d%s" % (opts.shard + (" by prefix" if opts.shard_by == "prefix" else "",)))
        return "Plugin line %d (%s)" % (self.number, ", ".join(parts))


class PluginLines:
    """The job's lines in FileSet order; ``current`` is the line Bareos is saving."""

    def __init__(self):
        self.lines = []
        self.overrides = []  # option strings of the Job's "FD Plugin Options"
        self.current = None

    def __iter__(self):
        return iter(self.lines)

    def __len__(self):
        return len(self.lines)

    def add(self, text, need_remote):
        """A line of the FileSet (before bEventEndFileSet); raises OptionError."""
        line = PluginLine(len(self.lines) + 1, text, build_options(text, self.overrides, need_remote))
        self.lines.append(line)
        return line

    def select(self, text, need_remote):
        """The backup/estimate command of the line with option text ``text``.

        The commands come in FileSet order.  A text that is no line of the FileSet is the Job's
        "FD Plugin Options": its options fill in what each line leaves unset (a line's own
        value wins, as in Bareos's own plugins).  Returns the line, or None for such options.
        """
        start = self.lines.index(self.current) + 1 if self.current in self.lines else 0
        for line in self.lines[start:] + self.lines[:start]:
            if line.text == text and not line.ended:
                self.current = line
                return line
        self.overrides.append(text)
        for line in self.lines:
            line.opts = build_options(line.text, self.overrides, need_remote)
        return None

    def secrets(self):
        return tuple(s for line in self.lines for s in line.opts.secrets)

    def warnings(self):
        return [w for line in self.lines for w in line.opts.warnings]

    def conflict(self):
        """Why these lines cannot be backed up together (their sessions have started), or None."""
        lines = [line for line in self.lines if line.session is not None]
        for i, first in enumerate(lines):
            for second in lines[i + 1 :]:
                text = _conflict(first, second)
                if text:
                    return text
        return None


def build_options(text, overrides=(), need_remote=True):
    """Validated Options of one option text plus the Job's "FD Plugin Options" (raises OptionError)."""
    optset = OptionSet()
    optset.add_string(text)
    for extra in overrides:
        optset.add_string(extra)
    return optset.build(need_remote=need_remote)


def build_restore_options(overrides, text, need_remote=True):
    """The options of a restored file: the restore's own (``overrides``) over its line's ``text``.

    A restore that names a ``provider`` names another store: none of the line's connection
    options (credentials, host, region, driver parameters) goes with it, only the plugin's own."""
    optset = OptionSet()
    optset.add_string(overrides)
    if overrides and "provider" in dict(split_plugin_string(overrides)):
        text = plugin_text([(k, v) for k, v in split_plugin_string(text) if k in PLUGIN_OPTIONS])
    optset.add_string(text, quiet=True)
    return optset.build(need_remote=need_remote)


def store_of(opts):
    """What identifies the object store and account a line reads (compared, never shown)."""
    kw = opts.driver_kwargs
    return (
        (opts.provider or "").upper(),
        kw.get("host"),
        kw.get("port"),
        kw.get("region"),
        kw.get("key"),
    )


def _conflict(first, second):
    same = sorted(set(first.session.buckets) & set(second.session.buckets))
    if not same:
        return None
    names = "%s and %s" % (first.describe(), second.describe())
    if store_of(first.opts) != store_of(second.opts):
        return (
            "%s both back up a bucket named %r from different object stores or accounts: their "
            "objects would get the same names in Bareos; back them up in separate FileSets"
            % (names, same[0])
        )
    if _overlap(first.opts, second.opts):
        return (
            "%s both select objects of bucket %r: they would be saved twice; give the lines "
            "disjoint prefixes or shards" % (names, same[0])
        )
    return None


def _overlap(a, b):
    """Whether two selections of one bucket may share an object."""
    pa, pb = a.prefix or "", b.prefix or ""
    if not (pa.startswith(pb) or pb.startswith(pa)):
        return False
    if a.shard and b.shard and a.shard[1] == b.shard[1] and a.shard[0] != b.shard[0]:
        by_a, by_b = a.shard_by or "hash", b.shard_by or "hash"
        if by_a == by_b == "hash" or (by_a == by_b == "prefix" and pa == pb):
            return False
    return True

