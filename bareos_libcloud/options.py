"""The plugin's options: parsing the plugin string, the credentials file, validation.

bareos-fd hands Python the FileSet's ``key=value`` pairs joined by ``:`` with a trailing ``:``
(``module_path``/``module_name`` already removed, backslashes kept).  ``\\:`` escapes a colon
inside a value and ``\\\\`` a backslash.  Every option this module does not know goes to the
libcloud driver, which takes only the names its class's ``__init__`` takes (checked in the helper
that builds the driver, driver.make_driver, with :func:`check_names`); any other name fails the
job.  Nothing here imports libcloud: the job's own interpreter stays network-free.
"""

import base64
import difflib
import hashlib
import os
import re
import stat
import time
from dataclasses import dataclass, field

from . import selection

DEFAULT_NB_PREFETCHER = 24
DEFAULT_QUEUE_SIZE = 1000
DEFAULT_PREFETCH_SIZE = 10 * 1024 * 1024
DEFAULT_PREFETCH_MEMORY = 256 * 1024 * 1024
DEFAULT_TIMEOUT = 60
DEFAULT_PROGRESS_INTERVAL = 10000
DEFAULT_RETRIES = 5
DEFAULT_RETRY_MAX_WAIT = 30
DEFAULT_INCREMENTAL_MARGIN = 3600
DEFAULT_RESTORE_TIER = "Standard"
DEFAULT_RESTORE_DAYS = 7
MAX_INCREMENTAL_MARGIN = 30 * 86400

#: Options whose values are secrets: never shown in any message.
SECRET_OPTIONS = frozenset({"key", "secret", "token", "password"})

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class OptionError(ValueError):
    """A bad option; the message names the option and never contains a secret value."""


def is_secret_option(name):
    """True for options whose value must never be shown."""
    name = name.lower()
    return name in SECRET_OPTIONS or name.endswith(("_key", "_secret", "_token", "_password"))


def split_plugin_string(text):
    """Split ``k1=v1:k2=v2:`` into ``[(k1, v1), (k2, v2)]``, honouring ``\\:`` and ``\\\\``."""
    pairs = []
    for number, part in enumerate(selection.split_unescaped(text, ":"), 1):
        if not part.strip():
            continue
        if "=" not in part:
            # The text is not shown: it may be the tail of a secret that holds a colon.
            raise OptionError(
                "plugin option number %d is not key=value (write a ':' inside a value as '\\:')" % number
            )
        key, value = part.split("=", 1)
        pairs.append((key.strip(), _unescape(value)))
    return pairs


def _unescape(value):
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value) and value[i + 1] in ":\\":
            out.append(value[i + 1])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def read_credentials_file(path):
    """Read ``key=value`` lines (``#``/``;`` comments, blank lines ignored) from ``path``."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise OptionError("credentials_file %r cannot be read: %s" % (path, exc.strerror or exc)) from None
    except UnicodeDecodeError:
        raise OptionError("credentials_file %r is not UTF-8 text" % path) from None
    pairs = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if "=" not in line:
            raise OptionError("credentials_file %r line %d is not key=value" % (path, number))
        key, value = line.split("=", 1)
        pairs.append((key.strip(), value.strip()))
    world_readable = bool(mode & stat.S_IROTH)
    return pairs, world_readable


def parse_bool(name, value):
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise OptionError("option %s=%r is not a boolean (use yes or no)" % (name, value))


def parse_int(name, value, minimum=None, maximum=None):
    try:
        number = int(value.strip(), 10)
    except ValueError:
        raise OptionError("option %s=%r is not a whole number" % (name, value)) from None
    _check_range(name, number, minimum, maximum)
    return number


def parse_size(name, value, minimum=None, maximum=None):
    """A byte count: ``10485760``, ``10M``, ``10MiB``, ``512k`` (binary units)."""
    match = _SIZE_RE.match(value)
    if not match:
        raise OptionError("option %s=%r is not a size in bytes (e.g. 10485760 or 10M)" % (name, value))
    number = int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    _check_range(name, number, minimum, maximum)
    return number


def parse_duration(name, value, minimum=None, maximum=None):
    """Seconds: ``3600``, ``90s``, ``30m``, ``2h``, ``1d``."""
    match = _DURATION_RE.match(value)
    if not match:
        raise OptionError("option %s=%r is not a duration (seconds, or a number with s, m, h or d, e.g. 30m)"
                          % (name, value))
    number = int(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
    _check_range(name, number, minimum, maximum)
    return number


def _check_range(name, number, minimum, maximum):
    if minimum is not None and number < minimum:
        raise OptionError("option %s=%d is too small (minimum %d)" % (name, number, minimum))
    if maximum is not None and number > maximum:
        raise OptionError("option %s=%d is too large (maximum %d)" % (name, number, maximum))


def parse_shard(name, value):
    """``K/N`` (1 <= K <= N): this job saves the K-th of N disjoint parts of the objects."""
    match = re.match(r"^\s*(\d+)\s*/\s*(\d+)\s*$", value)
    if not match:
        raise OptionError("option %s=%r is not K/N (e.g. shard=2/4)" % (name, value))
    k, n = int(match.group(1)), int(match.group(2))
    if not 1 <= k <= n:
        raise OptionError("option %s=%r needs 1 <= K <= N" % (name, value))
    return (k, n)


def parse_name_list(name, value):
    names = [item.strip() for item in value.split(",")]
    if any(not item for item in names):
        raise OptionError("option %s=%r has an empty name in its list" % (name, value))
    return names


def _absolute_path(name, value):
    if not os.path.isabs(value):
        raise OptionError("option %s=%r must be an absolute path" % (name, value))
    return value


def _readable_file(name, value):
    _absolute_path(name, value)
    try:
        with open(value, "rb"):
            pass
    except OSError as exc:
        raise OptionError("option %s=%r cannot be read: %s" % (name, value, exc.strerror or exc)) from None
    return value


def _ranged(parse, minimum, maximum=None):
    return lambda name, value: parse(name, value, minimum, maximum)


class CustomerKey:
    """The 256-bit SSE-C key of ``sse_customer_key_file``: the headers a GET of an object
    encrypted with it carries.  Its repr and str name the file only; ``secrets`` are the forms of
    the key that messages must never show."""

    ALGORITHM = "AES256"

    def __init__(self, path, key, secrets=(), world_readable=False):
        self.path = path
        self.b64 = base64.b64encode(key).decode("ascii")
        self.md5 = base64.b64encode(hashlib.md5(key).digest()).decode("ascii")
        self.secrets = tuple(dict.fromkeys((self.b64,) + tuple(s for s in secrets if len(s) >= 3)))
        self.world_readable = world_readable

    def headers(self):
        return {
            "x-amz-server-side-encryption-customer-algorithm": self.ALGORITHM,
            "x-amz-server-side-encryption-customer-key": self.b64,
            "x-amz-server-side-encryption-customer-key-MD5": self.md5,
        }

    def __repr__(self):
        return "CustomerKey(%r)" % self.path

    __str__ = __repr__


def read_customer_key_file(name, value):
    """A CustomerKey from the file ``value`` names: 32 raw bytes, or their base64 (a line)."""
    _absolute_path(name, value)
    try:
        with open(value, "rb") as handle:
            data = handle.read(4097)
            mode = os.fstat(handle.fileno()).st_mode
    except OSError as exc:
        raise OptionError("option %s=%r cannot be read: %s" % (name, value, exc.strerror or exc)) from None
    key, text = (data, None) if len(data) == 32 else (_base64_key(data), data.strip().decode("ascii", "replace"))
    if key is None:
        raise OptionError("option %s=%r: the file must hold a 256-bit key, as 32 raw bytes or in base64 "
                          "(it holds %d bytes, neither)" % (name, value, len(data)))
    secrets = [text] if text else []
    if all(32 <= byte < 127 for byte in key):
        secrets.append(key.decode("ascii"))  # a key typed as 32 characters
    return CustomerKey(value, key, secrets, world_readable=bool(mode & stat.S_IROTH))


def _base64_key(data):
    try:
        key = base64.b64decode(b"".join(data.split()), validate=True)
    except ValueError:
        return None
    return key if len(key) == 32 else None


def parse_request_payer(name, value):
    """``yes`` (or ``requester``, the header's value): every request says the requester pays."""
    return True if value.strip().lower() == "requester" else parse_bool(name, value)


# -- selection, archived objects, shards (selection.py) ------------------------------------------

def _selection_option(parse):
    """A parser of selection.py as an option parser: its error names the option and the value."""

    def parse_option(name, value):
        try:
            return parse(value)
        except selection.SelectionError as exc:
            raise OptionError("option %s=%r %s" % (name, value, exc)) from None

    return parse_option


def _choice(choices):
    return _selection_option(lambda value: selection.parse_choice(value, choices))


#: The selection options, their archive and shard companions; checked together by _check_selection.
SELECTION_OPTIONS = {
    "include": _selection_option(selection.parse_patterns),
    "exclude": _selection_option(selection.parse_patterns),
    "min_size": _ranged(parse_size, 0, 1 << 50),
    "max_size": _ranged(parse_size, 0, 1 << 50),
    "newer_than": _selection_option(selection.parse_when),
    "older_than": _selection_option(selection.parse_when),
    "storage_classes": _selection_option(selection.parse_classes),
    "exclude_storage_classes": _selection_option(selection.parse_classes),
    "archived": _choice(selection.ARCHIVED_MODES),
    "restore_tier": _choice(selection.RESTORE_TIERS),
    "restore_days": _ranged(parse_int, 1, 3650),
    "shard_by": _choice(selection.SHARD_MODES),
}


RESTORE_TARGETS = ("local", "bucket")


def _restore_to(value):
    if value.strip().lower() not in RESTORE_TARGETS:
        raise OptionError("option restore_to=%r is not one of %s" % (value, ", ".join(RESTORE_TARGETS)))
    return value.strip().lower()


def _bucket_name(name, value):
    if "/" in value or value != value.strip():
        raise OptionError("option %s=%r is not a bucket name (no '/', no surrounding blanks)" % (name, value))
    return value


def restore_overrides(first_text, cmd):
    """The options a restore's ``pluginoptions`` put in front of the backup's, as an option text.

    bareos-fd gives the first restored file's parse_plugin_definition the restore's plugin
    options followed by the backup's (python-fd.cc parse_plugin_definition), every later file's
    only the backup's; ``cmd`` (start_restore_file) is the backup's whole plugin string.  The
    pairs of ``first_text`` before the backup's are the overrides ("" if there are none)."""
    backup = line_pairs(cmd)
    first = split_plugin_string(first_text)
    extra = len(first) - len(backup)
    if extra <= 0 or first[extra:] != backup:
        return ""
    return plugin_text(first[:extra])


def fd_text(cmd):
    """The option text python3-fd hands the plugin for the whole plugin string ``cmd``.

    python-fd.cc's parse_plugin_definition: the part before the first ``:`` is the plugin's name
    (``python3``) and goes; ``module_path`` and ``module_name`` (names compared as it does: any
    case, and a prefix of them counts) go; the rest is passed on as it is, with a trailing ``:``.
    Pairs split on a ``:`` not preceded by a backslash.  A string that begins with an option
    (``provider=...``) has no plugin name to drop.
    """
    parts = re.split(r"(?<!\\):", cmd.strip())
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


def line_pairs(cmd):
    """The (key, value) pairs of what python3-fd hands the plugin for the plugin string ``cmd``."""
    return split_plugin_string(fd_text(cmd))


def plugin_text(pairs):
    """``k1=v1:k2=v2:`` of (key, value) pairs, ':' and '\\' in values escaped."""
    return "".join("%s=%s:" % (k, v.replace("\\", "\\\\").replace(":", "\\:")) for k, v in pairs)


def _check_selection(opts, raw):
    """The checks that involve several selection options, and warnings for unknown class names."""
    for name in ("storage_classes", "exclude_storage_classes"):
        if name in raw:
            selection.parse_classes(raw[name], opts.warnings)
    try:
        selection.check(opts, time.time())
    except selection.SelectionError as exc:
        raise OptionError(str(exc)) from None


#: The plugin's own options and how each is read; every other option goes to the driver.
PLUGIN_OPTIONS = {
    "buckets_include": parse_name_list,
    "buckets_exclude": parse_name_list,
    "prefix": lambda name, value: value,
    "nb_prefetcher": _ranged(parse_int, 1, 1024),
    "queue_size": _ranged(parse_int, 1, 10**7),
    "prefetch_size": _ranged(parse_size, 0, 1 << 40),
    "prefetch_memory": _ranged(parse_size, 1 << 20, 1 << 40),
    "timeout": _ranged(parse_int, 1, 86400),
    "progress_interval": _ranged(parse_int, 0),
    "debug": parse_bool,
    "retries": _ranged(parse_int, 1, 100),
    "retry_max_wait": _ranged(parse_int, 0, 3600),
    "shard": parse_shard,
    "fail_on_error": parse_bool,
    "python": _absolute_path,
    "ca_file": _readable_file,
    "incremental_margin": _ranged(parse_duration, 0, MAX_INCREMENTAL_MARGIN),
    # Objects a plain GET cannot read (S3 family): settled on the driver options by
    # _settle_request_options.
    "sse_customer_key_file": read_customer_key_file,
    "request_payer": parse_request_payer,
    # Restore options (a backup reads none of them): docs/restore-to-bucket.md
    "restore_to": lambda name, value: _restore_to(value),
    "restore_bucket": lambda name, value: _bucket_name(name, value),
    "restore_prefix": lambda name, value: value,
    **SELECTION_OPTIONS,
}

#: Plugin options that only backups read: a restore client need not have the files they name.
BACKUP_ONLY_FILES = ("ca_file", "sse_customer_key_file")

#: The other names the plugin reads itself (``key`` and ``secret`` also go to the driver).
OWN_OPTIONS = ("provider", "credentials_file", "key", "secret")

#: Driver options the plugin converts before passing them on.
DRIVER_OPTIONS = {"port": _ranged(parse_int, 1, 65535), "secure": parse_bool}


class DriverKwargs(dict):
    """The options that go to the libcloud driver, in the job's helper processes.

    ``unshown``: the names among them that directly follow a secret option in a plugin string.
    Such a name may be the tail of the secret's value (a ``:`` in it written unescaped), so a
    message about it does not show it.

    ``customer_key`` (a CustomerKey) and ``request_payer``: what the plugin adds to the driver's
    requests (sse_customer_key_file, request_payer); driver.make_driver applies them.
    """

    unshown = frozenset()
    customer_key = None
    request_payer = False


@dataclass
class Options:
    """Validated options of one job."""

    provider: str
    driver_kwargs: DriverKwargs = field(default_factory=DriverKwargs)
    buckets_include: list = None
    buckets_exclude: list = field(default_factory=list)
    prefix: str = None
    nb_prefetcher: int = DEFAULT_NB_PREFETCHER
    queue_size: int = DEFAULT_QUEUE_SIZE
    prefetch_size: int = DEFAULT_PREFETCH_SIZE
    prefetch_memory: int = DEFAULT_PREFETCH_MEMORY
    timeout: int = DEFAULT_TIMEOUT
    progress_interval: int = DEFAULT_PROGRESS_INTERVAL
    debug: bool = False
    python: str = None
    ca_file: str = None  # PEM CA bundle trusted for TLS instead of libcloud's (certifi's)
    retries: int = DEFAULT_RETRIES
    retry_max_wait: int = DEFAULT_RETRY_MAX_WAIT
    fail_on_error: bool = False
    shard: tuple = None  # (k, n): this job saves shard k of n (1 <= k <= n)
    incremental_margin: int = DEFAULT_INCREMENTAL_MARGIN  # seconds
    sse_customer_key_file: CustomerKey = None  # the key read from the file (never shown)
    request_payer: bool = False
    # selection within prefix, archived objects, shard mode (selection.py)
    include: list = None  # key patterns
    exclude: list = None
    min_size: int = None
    max_size: int = None
    newer_than: tuple = None  # ("at", epoch) or ("age", seconds)
    older_than: tuple = None
    storage_classes: list = None
    exclude_storage_classes: list = None
    archived: str = "skip"  # or "request"
    restore_tier: str = None  # Standard when archived=request
    restore_days: int = None  # DEFAULT_RESTORE_DAYS when archived=request
    shard_by: str = None  # "hash" (the default) or "prefix"
    restore_to: str = "local"  # or "bucket"
    restore_bucket: str = None  # None: each object's own bucket
    restore_prefix: str = ""
    secrets: tuple = ()
    warnings: list = field(default_factory=list)

    def __repr__(self):
        shown = {k: ("***" if is_secret_option(k) else v) for k, v in self.driver_kwargs.items()}
        return "Options(provider=%r, driver=%r, include=%r, exclude=%r, prefix=%r)" % (
            self.provider,
            shown,
            self.buckets_include,
            self.buckets_exclude,
            self.prefix,
        )


def _closest(name, known):
    """The known name closest to ``name`` (compared ignoring case), or None."""
    by_lower = {}
    for candidate in sorted(known):
        by_lower.setdefault(candidate.lower(), candidate)
    match = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.7)
    return by_lower[match[0]] if match else None


def check_names(names, driver_params=(), unshown=(), driver=None):
    """Raise :class:`OptionError` for the first of ``names`` that neither the plugin reads nor
    ``driver_params`` (the parameters of the libcloud driver for ``driver``) holds.

    The message names the option and the closest known name.  Names are case-sensitive.
    """
    known = set(PLUGIN_OPTIONS) | set(OWN_OPTIONS) | set(driver_params)
    for name in names:
        if name in known:
            continue
        if name in unshown:
            raise OptionError(
                "an unknown option follows a secret option in the plugin string; its name is not shown, "
                "as it may be the end of the secret (write a ':' inside a value as '\\:')"
            )
        closest = _closest(name, known)
        if closest is not None:
            raise OptionError("unknown option %s (did you mean %s?)" % (name, closest))
        if driver:
            raise OptionError("unknown option %s (neither the plugin's nor %s)"
                              % (name, driver_takes(driver, driver_params)))
        raise OptionError("unknown option %s (not one of the plugin's options)" % name)


def driver_takes(driver, driver_params):
    """``the libcloud driver for S3, which takes: host, port, ...``"""
    return "the libcloud driver for %s, which takes: %s" % (driver, ", ".join(sorted(set(driver_params) - {"key"})))


class OptionSet:
    """Collects raw options over the several parse_plugin_definition calls of a job.

    The first value seen for a key wins, as in Bareos' own plugins.
    """

    def __init__(self):
        self.raw = {}
        self.seen_strings = set()
        self.warnings = []
        self.after_secret = set()  # names that directly follow a secret option in a plugin string

    def add_string(self, text, quiet=False):
        """Merge one plugin string; returns True when it brought anything new.  ``quiet``: a key
        given already keeps its value without a warning (a restore's options over the backup's)."""
        if text in self.seen_strings:
            return False
        self.seen_strings.add(text)
        previous = None
        for key, value in split_plugin_string(text):
            if not _KEY_RE.match(key):
                raise OptionError("plugin option name %r is not valid" % key[:40])
            if previous is not None and is_secret_option(previous):
                self.after_secret.add(key)
            previous = key
            if key in self.raw:
                if self.raw[key] != value and not quiet:
                    shown = "" if is_secret_option(key) else " (%r kept)" % self.raw[key]
                    self.warnings.append("option %s given twice; the first value is used%s" % (key, shown))
                continue
            self.raw[key] = value
        return True

    def build(self, need_remote=True):
        """Validate and return :class:`Options`.

        ``need_remote`` is False for restores, which need no object-store access: the
        credentials file is then not read and the provider is not required.
        """
        raw = dict(self.raw)
        warnings = list(self.warnings)
        for key, value in raw.items():
            if value.strip() == "":
                raise OptionError("option %s is empty" % key)
        cred_path = raw.pop("credentials_file", None)
        if cred_path is not None and need_remote:
            pairs, world_readable = read_credentials_file(cred_path)
            if world_readable:
                warnings.append("credentials_file %r is readable by everyone; chmod 600 it" % cred_path)
            for key, value in pairs:
                if key == "credentials_file":
                    raise OptionError("credentials_file %r may not name another credentials_file" % cred_path)
                if not _KEY_RE.match(key):
                    raise OptionError("credentials_file %r has an invalid option name %r" % (cred_path, key[:40]))
                if value == "":
                    raise OptionError("option %s in credentials_file %r is empty" % (key, cred_path))
                raw.setdefault(key, value)

        if need_remote:
            self._check_case(raw)
        else:
            for name in BACKUP_ONLY_FILES:  # read by backups only: a restore client may not have them
                raw.pop(name, None)
        provider = raw.pop("provider", None)
        if need_remote and provider is None:
            raise OptionError("mandatory option provider is missing (e.g. provider=S3 or provider=S3_RGW)")
        if provider is not None:
            provider = provider.strip().upper()  # libcloud's Provider names: s3_rgw is S3_RGW
        opts = Options(provider=provider)
        opts.warnings = warnings
        opts.secrets = tuple(v for k, v in raw.items() if is_secret_option(k) and len(v) >= 3)
        selection_raw = {name: raw[name] for name in SELECTION_OPTIONS if name in raw}
        for name, parse in PLUGIN_OPTIONS.items():
            if name in raw:
                setattr(opts, name, parse(name, raw.pop(name)))
        if need_remote:  # a restore needs none of them (and an age moves on since the backup)
            _check_selection(opts, selection_raw)
        for key, value in raw.items():
            opts.driver_kwargs[key] = DRIVER_OPTIONS[key](key, value) if key in DRIVER_OPTIONS else value
        opts.driver_kwargs.unshown = frozenset(self.after_secret & set(opts.driver_kwargs))
        _settle_request_options(opts)
        if need_remote and "key" not in opts.driver_kwargs:
            raise OptionError("mandatory option key is missing (in the plugin string or a credentials_file)")
        return opts

    def _check_case(self, raw):
        """Refuse a name that differs from one the plugin reads only in case (``Buckets_Include``).

        Every other name may be a driver parameter: the helper that builds the driver checks it.
        """
        own = {name.lower() for name in list(PLUGIN_OPTIONS) + list(OWN_OPTIONS)}
        check_names([name for name in raw if name.lower() in own], unshown=self.after_secret)


def _settle_request_options(opts):
    """sse_customer_key_file and request_payer go to the helpers with the driver options; the
    key is a secret (masked like ``secret``), its file is warned about like a credentials_file."""
    key = opts.sse_customer_key_file
    if key is not None:
        opts.secrets += key.secrets
        if key.world_readable:
            opts.warnings.append("sse_customer_key_file %r is readable by everyone; chmod 600 it" % key.path)
        opts.driver_kwargs.customer_key = key
    opts.driver_kwargs.request_payer = opts.request_payer
