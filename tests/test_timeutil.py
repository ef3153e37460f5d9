"""Last-Modified to UTC epoch, independent of the local time zone and of DST."""

import time

import pytest

from bareos_libcloud.timeutil import to_epoch


@pytest.mark.parametrize(
    "text",
    ["2025-01-01T12:00:00.000Z", "2025-01-01T12:00:00Z", "Wed, 01 Jan 2025 12:00:00 GMT", "2025-01-01T13:00:00+01:00"],
)
def test_formats(text):
    assert to_epoch(text) == 1735732800


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York"])
def test_no_local_time_shift(zone, monkeypatch):
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        assert to_epoch("2025-07-01T12:00:00.000Z") == 1751371200
        assert to_epoch("2025-01-01T12:00:00.000Z") == 1735732800
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_fraction_is_dropped():
    assert to_epoch("2025-01-01T12:00:00.999Z") == 1735732800


@pytest.mark.parametrize("bad", [None, "", "yesterday", "2025-13-45"])
def test_bad_dates_raise(bad):
    with pytest.raises((ValueError, OverflowError)):
        to_epoch(bad)
