"""Backup names: how ``(bucket, key)`` becomes the Bareos file name, and back.

The name is ``/@libcloud/<bucket>/<key>`` with the key written as a path that any file system
can hold and that cannot climb out of a restore target.  docs/naming.md is the specification;
in short, percent-encoding (RFC 3986 style, UTF-8) is applied to:

* ``%`` itself, control characters (U+0000-U+001F, U+007F-U+009F);
* a ``/`` that would make an empty path segment (a leading ``/``, ``//``, a trailing ``/``):
  it is written ``%2F`` and stays inside its neighbour segment;
* a segment that is exactly ``.`` or ``..`` (``%2E``, ``%2E%2E``).

A segment longer than 255 bytes is cut into pieces of at most 255 bytes; every piece but the
last ends with a lone ``%`` meaning "continued in the next segment, no ``/`` here".

Decoding is plain percent-decoding after joining continued pieces, so the key is recovered
exactly.  Names not produced by :func:`object_fname` are rejected by :func:`parse_fname`.
"""

import re

PREFIX = "/@libcloud/"
MAX_SEGMENT = 255
#: Appended at restore time to an object whose name is also a "folder" of other objects.
OBJECT_SUFFIX = "%obj"


class BadName(ValueError):
    """A Bareos file name that this plugin did not produce."""


#: What is percent-encoded: "%" itself and the C0 and C1 control characters (with DEL).
_NEEDS_ESCAPE = re.compile("[%\x00-\x1f\x7f-\x9f]")


def _percent(match):
    return "".join("%%%02X" % b for b in match.group().encode("utf-8"))


def _escape_chars(text):
    return _NEEDS_ESCAPE.sub(_percent, text)


def _escape_dots(segment):
    if segment == ".":
        return "%2E"
    if segment == "..":
        return "%2E%2E"
    return segment


def _split_long(segment, limit=MAX_SEGMENT):
    """Cut an encoded segment into pieces of <= limit bytes (continuations end with '%')."""
    if len(segment.encode("utf-8")) <= limit:
        return [segment]
    pieces, cur, size, i = [], [], 0, 0
    while i < len(segment):
        unit = segment[i : i + 3] if segment[i] == "%" else segment[i]
        unit_size = len(unit.encode("utf-8"))
        if size + unit_size > limit - 1:
            pieces.append("".join(cur) + "%")
            cur, size = [], 0
        cur.append(unit)
        size += unit_size
        i += len(unit)
    last = "".join(cur)
    pieces.append(_escape_dots(last) if last in (".", "..") else last)
    return pieces


def encode_segment(text):
    """One path segment that holds ``text`` whole (a ``/`` inside is written ``%2F``)."""
    if text == "":
        raise BadName("an empty bucket or key cannot be named")
    return _escape_dots(_escape_chars(text).replace("/", "%2F"))


def encode_key(key):
    """The key as a list of path segments (before the 255-byte split)."""
    if key == "":
        raise BadName("an empty key cannot be named")
    parts = key.split("/")
    segments, cur = [], _escape_chars(parts[0])
    for prev, part in zip(parts, parts[1:]):
        if prev != "" and part != "":
            segments.append(cur)
            cur = ""
        else:
            cur += "%2F"
        cur += _escape_chars(part)
    segments.append(cur)
    return [_escape_dots(s) for s in segments]


def _join(segments, suffix=""):
    out = []
    for index, segment in enumerate(segments):
        if suffix and index == len(segments) - 1:
            segment += suffix
        out.extend(_split_long(segment))
    return out


def object_fname(bucket, key):
    """The Bareos file name of ``key`` in ``bucket``."""
    return PREFIX + "/".join(_join([encode_segment(bucket)] + encode_key(key)))


def restore_segments(bucket, key, as_file_in_folder=False):
    """The relative path segments an object is restored to (``@libcloud``, bucket, key...).

    ``as_file_in_folder`` gives the place of an object whose name is also a folder of other
    objects (``a`` next to ``a/b``): the last segment gets :data:`OBJECT_SUFFIX`.
    """
    suffix = OBJECT_SUFFIX if as_file_in_folder else ""
    return [PREFIX.strip("/")] + _join([encode_segment(bucket)] + encode_key(key), suffix)


def folder_object_pieces(leaf):
    """Where a restored file ``leaf`` moves when a folder of the same name is needed."""
    return _split_long(leaf + OBJECT_SUFFIX)


def _merge_continuations(segments):
    merged, cur = [], ""
    for segment in segments:
        if segment.endswith("%"):  # an escape ends in hex digits, so a final '%' is a mark
            cur += segment[:-1]
            continue
        merged.append(cur + segment)
        cur = ""
    if cur:
        raise BadName("a continued segment has no continuation")
    return merged


def _percent_decode(text):
    data = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "%":
            hexpair = text[i + 1 : i + 3]
            if len(hexpair) != 2 or any(c not in "0123456789ABCDEFabcdef" for c in hexpair):
                raise BadName("bad escape in name")
            data.append(int(hexpair, 16))
            i += 3
        else:
            data.extend(ch.encode("utf-8"))
            i += 1
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadName("escape is not UTF-8") from None


def parse_fname(fname):
    """``(bucket, key)`` of a name made by :func:`object_fname`; raises on anything else."""
    if not fname.startswith(PREFIX):
        raise BadName("not a bareos-libcloud name")
    segments = _merge_continuations(fname[len(PREFIX) :].split("/"))
    if len(segments) < 2:
        raise BadName("name has no key")
    bucket = _percent_decode(segments[0])
    key = _percent_decode("/".join(segments[1:]))
    if object_fname(bucket, key) != fname:
        raise BadName("name is not in canonical form")
    return bucket, key
