"""Shared pytest fixtures: local S3 servers and unique bucket names.

Fixtures
  moto         session-wide MotoServer (moto's standalone server, fast, checks no signatures)
  rgw          session-wide RadosGW (real Ceph radosgw). Without Ceph installed: skipped with a
               visible notice, or failed when $CI is set (CI must run the radosgw suite).
  azurite      session-wide Azurite (Microsoft's Azure Blob emulator): a provider outside the S3
               family. Skipped with a notice when not installed, failed when $CI is set.
  swift        session-wide Swift (OpenStack Swift itself: proxy, account, container and object
               server) for OPENSTACK_SWIFT. Skipped with a notice when not installed, failed when
               $CI is set.
  s3           parametrized over both servers: a test using it runs once on moto and once on
               radosgw (the radosgw run carries the `rgw` marker)
  bucket_name  a unique, valid bucket name for the current test
  fd           an emulated bareos-fd (tests/fdemu) with its working directory in tmp_path
  proxy        a FaultProxy (tests/faultproxy.py) in front of moto

Every test (autouse)
  job-side imports: an import statement run in the emulated daemon's job interpreter (its job,
  cancel and the plugin's own threads) may name only the stdlib, the plugin and dateutil; the
  test fails naming anything else (libcloud, requests, ...), also on an error path

Marker
  rgw          the radosgw suite; every test using the `rgw` fixture gets it automatically, so
               `-m "not rgw"` leaves the suite out and `-m rgw` runs only it.
"""

import builtins
import os
import re
import sys
import threading
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from servers import Azurite, MotoServer, RadosGW, Swift  # noqa: E402

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
        terminalreporter.write_sep("=", "server suites SKIPPED", yellow=True, bold=True)
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


def _cannot_run(suite, msg):
    """Skip a suite whose server is not installed, with a notice; under CI, fail instead."""
    if _in_ci():
        pytest.fail("CI is set, so the %s suite must run, not skip: %s" % (suite, msg), pytrace=False)
    if msg not in _notices:
        _notices.append(msg)
    pytest.skip("%s not available: %s" % (suite, msg))


def _started(server, name):
    try:
        server.start()
    except RuntimeError as e:
        pytest.fail("%s did not start: %s" % (name, e), pytrace=False)
    return server


@pytest.fixture(scope="session")
def rgw():
    missing = RadosGW.missing()
    if missing:
        msg = "the radosgw suite cannot run, missing: %s." % ", ".join(missing)
        if any("not on PATH" in m for m in missing):
            msg += (" Install Ceph as root with `%s` (`python3 run.py test` does that when "
                    "run as root)." % CEPH_INSTALL)
        _cannot_run("radosgw", msg)
    server = _started(RadosGW(), "radosgw")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite():
    missing = Azurite.missing()
    if missing:
        _cannot_run("Azure", "the Azure suite cannot run, missing: %s (`python3 run.py test` installs "
                             "Azurite with npm)." % ", ".join(missing))
    server = _started(Azurite(), "azurite")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def swift():
    missing = Swift.missing()
    if missing:
        _cannot_run("Swift", "the Swift suite cannot run, missing: %s (`python3 run.py test` installs it "
                             "with pip into its own virtualenv)." % ", ".join(missing))
    server = _started(Swift(), "swift")
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


#: Installed packages the job's interpreter may import (docs/design.md): dateutil (pure Python, for
#: odd Last-Modified formats) and six, its dependency.  The plugin itself and the modules next to
#: it on module_path are not installed packages.
JOB_SIDE_ALLOWED = {"dateutil", "six"}
#: Threads of the emulated job interpreter: the job thread, the cancel thread, the plugin's own.
JOB_SIDE_THREADS = ("fdemu-job", "fdemu-cancel", "bareos-libcloud")


def _installed_package(top):
    """Whether the loaded top-level module ``top`` comes from site-packages or dist-packages."""
    module = sys.modules.get(top)
    where = getattr(module, "__file__", None) or "".join(getattr(module, "__path__", []) or [])
    return "site-packages" in where or "dist-packages" in where


@pytest.fixture
def fd(tmp_path):
    from fdemu import FileDaemon

    return FileDaemon(str(tmp_path / "fd"))


@pytest.fixture
def proxy(moto):
    from faultproxy import FaultProxy

    with FaultProxy(moto.host, moto.port) as p:
        yield p


@pytest.fixture(autouse=True)
def job_side_imports():
    """Fail a test in which the job's interpreter ran an import of libcloud, requests or any other
    installed package.  In bareos-fd, compiled modules (requests' charset_normalizer, for one)
    fail from the second job on (docs/emulator.md, trace §8a).  The test process has them loaded anyway,
    so the import statement itself is what is watched."""
    seen = []
    original = builtins.__import__

    def watched(name, globals=None, locals=None, fromlist=(), level=0):
        module = original(name, globals, locals, fromlist, level)
        if level == 0 and threading.current_thread().name.startswith(JOB_SIDE_THREADS):
            top = name.partition(".")[0]
            if top not in sys.stdlib_module_names and top not in JOB_SIDE_ALLOWED and _installed_package(top):
                seen.append("%s (thread %s)" % (name, threading.current_thread().name))
        return module

    builtins.__import__ = watched
    try:
        yield
    finally:
        builtins.__import__ = original
    assert not seen, "the job's interpreter imported: %s" % ", ".join(sorted(set(seen)))
