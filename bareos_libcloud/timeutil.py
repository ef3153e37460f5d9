"""Last-Modified values as UTC epoch seconds.

No ``datetime.strptime`` (it fails from the second job in a bareos-fd sub-interpreter) and no
local time: an object's mtime is the same number in summer and winter, on every host.
"""

import calendar
import email.utils
import re

_ISO = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*$"
)


#: Dates already read: objects written in the same second share their Last-Modified text, and
#: parsing one (email.utils) cost a tenth of a fetch helper's CPU per small object.
_SEEN = {}
_SEEN_MAX = 4096


def to_epoch(value):
    """Seconds since the epoch (UTC, fraction dropped) of an ISO 8601 or RFC 1123 date.

    Raises ValueError for anything else.
    """
    if value is None:
        raise ValueError("no Last-Modified")
    if hasattr(value, "timestamp"):  # a datetime from a driver
        return int(value.timestamp())
    text = str(value)
    epoch = _SEEN.get(text)
    if epoch is None:
        epoch = _parse(text)
        if len(_SEEN) >= _SEEN_MAX:
            _SEEN.clear()
        _SEEN[text] = epoch
    return epoch


def _parse(text):
    match = _ISO.match(text)
    if match:
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        epoch = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        zone = match.group(7)
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "")
            epoch -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
        return epoch
    parsed = email.utils.parsedate_tz(text)
    if parsed is not None:
        return int(email.utils.mktime_tz(parsed))
    return _other_format(text)


def _other_format(text):
    """Any other date a driver may report, read by dateutil; a date without zone is UTC."""
    from dateutil import parser, tz

    try:
        moment = parser.isoparse(text) if text[:4].isdigit() else parser.parse(text)
    except (ValueError, OverflowError) as exc:
        raise ValueError("unrecognised date %r: %s" % (text[:60], exc)) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz.UTC)
    return int(moment.timestamp())
