"""Which objects of a bucket a job selects, beyond ``prefix``: key patterns, sizes, dates and
storage classes; and which storage classes no plain GET can read.

The options are parsed and checked on the job side (options.py, at the job's start) and applied
in the lister process (listing.py), so that objects left out never cross the pipe to the job.
Standard library only: both sides import it.

Patterns (``include=``, ``exclude=``) match the whole key, after ``prefix`` (the key is the full
key, prefix included).  Several are separated by commas; a comma inside a pattern is written
``\\,``.  A pattern is a glob unless it begins with ``re:``:

* ``*`` matches any characters but ``/`` (within one segment), ``?`` one character but ``/``;
* ``**`` matches any characters including ``/``; ``**/`` at the start of a segment matches zero
  or more whole segments (``**/*.jpg`` matches ``a.jpg`` and ``x/y/a.jpg``);
* ``[abc]``, ``[a-z]``, ``[!abc]`` (or ``[^abc]``): one character of (not of) the set, never ``/``;
* ``\\x`` matches ``x`` itself (``\\*`` a star, ``\\[`` a bracket, ``\\\\`` a backslash).

``re:REGEX`` is a Python regular expression searched anywhere in the key (anchor it with ``^``
and ``$``).  A key is selected when it matches one of the ``include`` patterns (or there are none)
and none of the ``exclude`` patterns.
"""

import calendar
import difflib
import re

#: S3 storage classes a plain GET cannot read until a restore request made a temporary copy
#: (GLACIER is "S3 Glacier Flexible Retrieval").  GLACIER_IR (Instant Retrieval) is readable.
S3_ARCHIVED = frozenset({"GLACIER", "DEEP_ARCHIVE"})
#: Azure's access tier no GET can read (a blob leaves it only by a change of its tier).
AZURE_ARCHIVED = frozenset({"ARCHIVE"})

#: Storage classes the object stores document: AWS S3, Google Cloud Storage (its S3 API states
#: them too), Azure's access tiers.  Another name is accepted with a warning (a Ceph RGW placement
#: may define its own classes); one close to a known name is refused as a typo.
KNOWN_CLASSES = (
    "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER",
    "GLACIER_IR", "DEEP_ARCHIVE", "OUTPOSTS", "SNOW", "EXPRESS_ONEZONE",
    "NEARLINE", "COLDLINE", "ARCHIVE", "MULTI_REGIONAL", "REGIONAL", "DURABLE_REDUCED_AVAILABILITY",
    "HOT", "COOL", "COLD",
)

ARCHIVED_MODES = ("skip", "request")
RESTORE_TIERS = ("Standard", "Bulk", "Expedited")
SHARD_MODES = ("hash", "prefix")

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):?(\d{2})(?::?(\d{2}))?Z?)?$")
_AGE = re.compile(r"^(\d+)\s*([smhdw])$", re.IGNORECASE)
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_CLASS = re.compile(r"^[A-Z][A-Z0-9_]*$")


class SelectionError(ValueError):
    """A bad selection option (options.py turns it into an OptionError naming the option)."""


# -- patterns ----------------------------------------------------------------------------------

def split_unescaped(text, sep):
    """``text`` split at each ``sep`` not preceded by a backslash; the pieces keep their
    backslashes (options.py splits plugin strings with it too)."""
    parts, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def split_patterns(value):
    """``a,b\\,c`` -> ``["a", "b\\,c"]``: split at commas not preceded by a backslash (the
    pieces keep their backslashes: a glob reads ``\\,`` as a comma, and so does a regex)."""
    pieces = [piece.strip() for piece in split_unescaped(value, ",")]
    if any(not piece or piece == "re:" for piece in pieces):
        raise SelectionError("has an empty pattern in its list (a comma inside a pattern is written \\,)")
    return pieces


def glob_to_regex(pattern):
    """The regular expression (to be matched against the whole key) of a glob pattern."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise SelectionError("pattern %r ends with a lone backslash" % pattern)
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif ch == "*":
            j = i
            while j < n and pattern[j] == "*":
                j += 1
            if j - i == 1:
                out.append("[^/]*")
            elif j < n and pattern[j] == "/" and (i == 0 or pattern[i - 1] == "/"):
                out.append("(?:.*/)?")  # **/ : zero or more whole segments
                j += 1
            else:
                out.append(".*")
            i = j
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            regex, i = _char_class(pattern, i)
            out.append(regex)
        else:
            out.append(re.escape(ch))
            i += 1
    return "".join(out)


def _char_class(pattern, start):
    """``[...]`` at ``start``: (regex, index after the closing bracket)."""
    i, n = start + 1, len(pattern)
    negate = i < n and pattern[i] in "!^"
    if negate:
        i += 1
    items, first = [], True
    while True:
        if i >= n:
            raise SelectionError("pattern %r has a '[' without its ']'" % pattern)
        ch = pattern[i]
        if ch == "]" and not first:
            break
        first = False
        if ch == "\\":
            if i + 1 >= n:
                raise SelectionError("pattern %r ends with a lone backslash" % pattern)
            items.append(re.escape(pattern[i + 1]))
            i += 2
        elif ch == "-" and items and i + 1 < n and pattern[i + 1] != "]":
            items.append("-")
            i += 1
        else:
            items.append(re.escape(ch) if ch != "-" else "\\-")
            i += 1
    body = "".join(items)
    try:
        re.compile("[%s]" % body)
    except re.error as exc:
        raise SelectionError("pattern %r has a bad character set: %s" % (pattern, exc)) from None
    return ("[^/%s]" % body if negate else "(?:(?!/)[%s])" % body), i + 1


def compile_patterns(patterns):
    """A function ``key -> bool`` that is True when any of ``patterns`` matches, or None for none.

    The globs become one regular expression; each ``re:`` pattern is a search of its own.
    """
    if not patterns:
        return None
    globs, searches = [], []
    for pattern in patterns:
        if pattern.startswith("re:"):
            try:
                searches.append(re.compile(pattern[3:]).search)
            except re.error as exc:
                raise SelectionError("regular expression %r is not valid: %s" % (pattern[3:], exc)) from None
        else:
            globs.append(glob_to_regex(pattern))
    if globs:
        searches.insert(0, re.compile("(?:%s)\\Z" % "|".join("(?:%s)" % g for g in globs), re.DOTALL).match)
    if len(searches) == 1:
        return lambda key, search=searches[0]: search(key) is not None
    return lambda key: any(search(key) is not None for search in searches)


# -- option values -----------------------------------------------------------------------------

def parse_patterns(value):
    patterns = split_patterns(value)
    compile_patterns(patterns)  # every pattern is checked now, not when the first key comes
    return patterns


def parse_when(value):
    """``2024-01-31``, ``2024-01-31T12:00:00Z`` or ``2024-01-31T120000Z`` (UTC; the form without
    colons needs no ``\\:`` in a plugin string): ``("at", epoch)``; ``30d``, ``12h``, ``90m``,
    ``45s``, ``2w``: ``("age", seconds)`` before the job's start."""
    text = value.strip()
    age = _AGE.match(text)
    if age:
        return ("age", int(age.group(1)) * _AGE_UNITS[age.group(2).lower()])
    date = _DATE.match(text)
    if not date:
        raise SelectionError("is neither a UTC date (2024-01-31, 2024-01-31T120000Z or 2024-01-31T12:00:00Z) "
                             "nor an age (a number with s, m, h, d or w, e.g. 30d)")
    year, month, day = (int(g) for g in date.groups()[:3])
    hour, minute, second = (int(g or 0) for g in date.groups()[3:])
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year, month)[1] \
            or hour > 23 or minute > 59 or second > 59:
        raise SelectionError("is not a valid date and time")
    return ("at", calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


def resolve_when(when, now):
    """The epoch of a parsed ``newer_than``/``older_than`` for a job that started at ``now``."""
    if when is None:
        return None
    kind, number = when
    return number if kind == "at" else now - number


def parse_classes(value, warnings=None):
    """Comma-separated storage class names, upper-cased.  A name close to a known one but not it
    is refused as a typo; another unknown one is kept and noted in ``warnings``."""
    names = [item.strip().upper() for item in value.split(",")]
    if any(not name for name in names):
        raise SelectionError("has an empty name in its list")
    for name in names:
        if name in KNOWN_CLASSES:
            continue
        if not _CLASS.match(name):
            raise SelectionError("%r is not a storage class name" % name)
        close = difflib.get_close_matches(name, KNOWN_CLASSES, n=1, cutoff=0.8)
        if close:
            raise SelectionError("%r is not a storage class (did you mean %s?)" % (name, close[0]))
        if warnings is not None:
            warnings.append("storage class %s is none that S3, Google Cloud Storage or Azure define; "
                            "it is used as given (a store may define its own)" % name)
    return names


def parse_choice(value, choices):
    for choice in choices:
        if value.strip().lower() == choice.lower():
            return choice
    raise SelectionError("is not one of %s" % ", ".join(choices))


# -- applying it ------------------------------------------------------------------------------

#: The options of a selection, as config["selection"] carries them to the lister.
FIELDS = ("include", "exclude", "min_size", "max_size", "newer_than", "older_than", "storage_classes",
          "exclude_storage_classes")


def spec_of(opts):
    """The selection options of ``opts`` as a plain dict (for the lister's config); only those set."""
    return {name: getattr(opts, name) for name in FIELDS if getattr(opts, name, None) is not None}


def describe(spec):
    """``include **.jpg; min_size 1024`` for the job log (empty when nothing is set)."""
    parts = []
    for name in FIELDS:
        value = spec.get(name)
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(value)
        elif isinstance(value, tuple):
            value = ("%d s before the job's start" % value[1]) if value[0] == "age" else _iso(value[1])
        parts.append("%s %s" % (name, value))
    return "; ".join(parts)


def _iso(epoch):
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class Selection:
    """A job's selection within ``prefix``, compiled once (in the lister, and on the job side for
    the retry journal's entries).  ``now``: the job's start, for ages."""

    def __init__(self, spec, now):
        spec = spec or {}
        self.spec = spec
        self.include = compile_patterns(spec.get("include"))
        self.exclude = compile_patterns(spec.get("exclude"))
        self.min_size = spec.get("min_size")
        self.max_size = spec.get("max_size")
        self.newer = resolve_when(spec.get("newer_than"), now)
        self.older = resolve_when(spec.get("older_than"), now)
        self.now = now
        classes = spec.get("storage_classes")
        self.classes = frozenset(classes) if classes else None
        self.not_classes = frozenset(spec.get("exclude_storage_classes") or ())
        self.by_key = self.include is not None or self.exclude is not None
        self.by_attributes = any(x is not None for x in (self.min_size, self.max_size, self.newer, self.older))
        self.by_class = self.classes is not None or bool(self.not_classes)
        self.active = self.by_key or self.by_attributes or self.by_class

    def key_selected(self, key):
        """Whether the patterns select ``key``."""
        if self.include is not None and not self.include(key):
            return False
        return self.exclude is None or not self.exclude(key)

    def selected(self, key, size, mtime, storage_class):
        """Whether the job selects an object.  ``storage_class`` None means STANDARD (S3 leaves
        it out for some stores); ``mtime`` None (a store that states none) counts as the job's
        start, the time the job gives such an object."""
        if self.by_key and not self.key_selected(key):
            return False
        if self.by_attributes:
            if self.min_size is not None and size < self.min_size:
                return False
            if self.max_size is not None and size > self.max_size:
                return False
            when = self.now if mtime is None else mtime
            if self.newer is not None and when < self.newer:
                return False
            if self.older is not None and when >= self.older:
                return False
        if self.by_class:
            storage_class = storage_class or "STANDARD"
            if self.classes is not None and storage_class not in self.classes:
                return False
            if storage_class in self.not_classes:
                return False
        return True


def check(opts, now):
    """Cross-checks of the selection options of ``opts`` (raises SelectionError naming them)."""
    if opts.min_size is not None and opts.max_size is not None and opts.min_size > opts.max_size:
        raise SelectionError("min_size=%d is larger than max_size=%d: no object could be selected"
                             % (opts.min_size, opts.max_size))
    newer, older = resolve_when(opts.newer_than, now), resolve_when(opts.older_than, now)
    if newer is not None and older is not None and newer >= older:
        raise SelectionError("newer_than and older_than leave no time between them: no object could be selected")
    both = set(opts.storage_classes or ()) & set(opts.exclude_storage_classes or ())
    if both:
        raise SelectionError("storage class %s is both in storage_classes and exclude_storage_classes"
                             % sorted(both)[0])
    if opts.archived != "request":
        for name in ("restore_tier", "restore_days"):
            if getattr(opts, name) is not None:
                raise SelectionError("%s applies only with archived=request" % name)
    if opts.shard_by is not None and opts.shard is None:
        raise SelectionError("shard_by=%s needs shard=K/N" % opts.shard_by)
