"""Shared pytest fixtures: local S3 servers and unique bucket names.

Fixtures
  moto         session-wide MotoServer (moto's standalone server, fast, checks no signatures)
  rgw          session-wide RadosGW (real Ceph radosgw). Without Ceph installed: skipped with a
               visible notice, or failed when $CI is set (CI must run the radosgw suite).
  s3           parametrized over both servers: a test using it runs once on moto and once on
               radosgw (the radosgw run carries the `rgw` marker)
  bucket_name  a unique, valid bucket name for the current test

Marker
  rgw          the radosgw suite; every test using the `rgw` fixture gets it automatically, so
               `-m "not rgw"` leaves the suite out and `-m rgw` runs only it.
"""

import os
import re
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from servers import MotoServer, RadosGW  # noqa: E402

CEPH_INSTALL = "apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw"
_notices = []


def _in_ci():
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "rgw: needs the Ceph radosgw server (real S3). Skipped when Ceph is not installed, "
        "except under CI where it fails.")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "rgw" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.rgw)


def pytest_terminal_summary(terminalreporter):
    if _notices:
        terminalreporter.write_sep("=", "radosgw suite SKIPPED", yellow=True, bold=True)
        for line in _notices:
            terminalreporter.write_line("WARNING: " + line, yellow=True)


@pytest.fixture(scope="session")
def moto():
    server = MotoServer()
    try:
        server.start()
    except RuntimeError as e:
        pytest.fail("moto server did not start: %s" % e, pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rgw():
    missing = RadosGW.missing()
    if missing:
        msg = "the radosgw suite cannot run, missing: %s." % ", ".join(missing)
        if any("not on PATH" in m for m in missing):
            msg += (" Install Ceph as root with `%s` (`python3 run.py test` does that when "
                    "run as root)." % CEPH_INSTALL)
        if _in_ci():
            pytest.fail("CI is set, so the radosgw suite must run, not skip: " + msg,
                        pytrace=False)
        if msg not in _notices:
            _notices.append(msg)
        pytest.skip("radosgw not available: " + msg)
    server = RadosGW()
    try:
        server.start()
    except RuntimeError as e:
        pytest.fail("radosgw did not start: %s" % e, pytrace=False)
    yield server
    server.stop()


@pytest.fixture(params=["moto", pytest.param("rgw", marks=pytest.mark.rgw)])
def s3(request):
    """Each local S3 server in turn (moto, then radosgw)."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def bucket_name(request):
    """Unique valid S3 bucket name (3-63 chars of [a-z0-9-]) derived from the test's name."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    base = base[:40].strip("-") or "t"
    return "%s-%s" % (base, uuid.uuid4().hex[:12])
