"""Local S3 servers for tests, the demo and benchmarks (no pytest dependency).

    from servers import MotoServer, RadosGW

    with MotoServer() as s3:                       # moto's standalone server, ~1 s
        s3.make_bucket("bkt", {"a/b": b"data"})
        opts = s3.plugin_options()                  # "provider=S3_RGW:key=...:...:secure=false:region=..."

    if RadosGW.available():
        with RadosGW() as s3:                       # real Ceph radosgw (memstore), ~1.5-2 s
            ...                                     # (tests/miniceph.py starts the cluster)

    with Azurite() as azure:                       # Microsoft's Azure Blob emulator (Node.js), ~1 s
        azure.make_bucket("ctr", {"a/b": b"data"})  # a container; plugin_options() says AZURE_BLOBS

    with Swift() as swift:                         # OpenStack Swift itself (.venv/swift), ~1.5 s
        swift.make_bucket("ctr", {"a/b": b"data"})  # plugin_options() says OPENSTACK_SWIFT

All servers listen on 127.0.0.1 only, on free ports, and expose the same attributes:
``host``, ``port``, ``key``, ``secret``, ``provider`` (name of a libcloud ``Provider``
constant), ``region``, ``endpoint_url``, and the methods ``plugin_options()``,
``boto3_client()``, ``libcloud_driver()``, ``make_bucket(name, objects)``, ``stop()``.

Facts this relies on (measured with libcloud 3.9.1 against radosgw 16.2.15 and moto 5.2.5):
* libcloud's ``S3_RGW`` driver works against both. Its ``create_container`` sends
  ``LocationConstraint=<region>``; RGW's zonegroup is ``default``, so region must be
  ``default`` there. moto accepts that too, so both servers use region ``default``.
* moto checks no signatures at all; RGW does.
* boto3 stores odd keys (``a//b``, ``/lead``, ``a/../b``, ``.``) exactly; libcloud does not, so
  fixtures are written with boto3.
"""

import atexit
import hashlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import miniceph  # tests/miniceph.py, beside this file

__all__ = ["S3Server", "MotoServer", "RadosGW", "Azurite", "Swift", "free_port", "repo_root"]

HOST = "127.0.0.1"


def repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port_block(size, low=20000, high=32000, tries=200):
    """First port of `size` consecutive free ports, below Linux's ephemeral range (32768+), so
    that client connections cannot grab them between the check and the daemons' binds."""
    rnd = random.SystemRandom()
    for _ in range(tries):
        base = rnd.randrange(low, high - size)
        if all(_port_is_free(p) for p in range(base, base + size)):
            return base
    raise RuntimeError("no block of %d free ports in %d-%d" % (size, low, high))


def _random_token(n, alphabet=string.ascii_letters + string.digits):
    # letters and digits only: ':' and '=' would break the plugin option string
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _tail(path):
    return miniceph.tail(path, 40)


class S3Server:
    """Common part of the local servers. Subclasses set the attributes and start()/stop()."""

    host = HOST
    port = None
    key = None
    secret = None
    provider = "S3_RGW"
    region = "default"
    secure = False
    keeps_alive = True  # answers HTTP/1.1 and keeps the connection open between requests

    # -- connection details -------------------------------------------------------------------
    @property
    def endpoint_url(self):
        return "http://%s:%d" % (self.host, self.port)

    def plugin_options(self, region=True):
        """Plugin option string fragment, without leading or trailing ':'."""
        parts = [
            "provider=%s" % self.provider,
            "key=%s" % self.key,
            "secret=%s" % self.secret,
            "host=%s" % self.host,
            "port=%d" % self.port,
            "secure=false",
        ]
        if region and self.region:
            parts.append("region=%s" % self.region)
        return ":".join(parts)

    def boto3_client(self, **config):
        """boto3 S3 client: SigV4, path-style addressing, this server's endpoint and region."""
        import boto3
        from botocore.config import Config

        kw = dict(signature_version="s3v4", s3={"addressing_style": "path"},
                  retries={"max_attempts": 3, "mode": "standard"},
                  max_pool_connections=32)
        kw.update(config)
        try:
            # botocore >= 1.36 adds CRC checksums (aws-chunked trailers) to every PUT by
            # default; Ceph Pacific's RGW does not understand them. Only when required.
            cfg = Config(request_checksum_calculation="when_required",
                         response_checksum_validation="when_required", **kw)
        except TypeError:  # older botocore without these options
            cfg = Config(**kw)
        return boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.key,
                            aws_secret_access_key=self.secret, region_name=self.region,
                            config=cfg)

    def libcloud_driver(self, **kwargs):
        """A libcloud storage driver for this server (kwargs go to the driver, e.g.
        signature_version='2')."""
        from libcloud.storage.providers import Provider, get_driver

        cls = get_driver(getattr(Provider, self.provider))
        return cls(self.key, self.secret, host=self.host, port=self.port, secure=False,
                   region=self.region, **kwargs)

    # -- fixtures ---------------------------------------------------------------------------
    def make_bucket(self, name, objects=None, threads=16):
        """Create bucket `name` and upload `objects` ({key: bytes}) with boto3, which keeps
        every key exactly as given. Uses a thread pool when there are many objects."""
        client = self.boto3_client()
        if self.region and self.region != "us-east-1":
            # moto insists on a constraint matching the signed region; RGW accepts its own
            # zonegroup name (what libcloud's create_container sends, too)
            client.create_bucket(Bucket=name, CreateBucketConfiguration={
                "LocationConstraint": self.region})
        else:
            client.create_bucket(Bucket=name)
        objects = objects or {}

        def put(item):
            client.put_object(Bucket=name, Key=item[0], Body=item[1])

        if len(objects) <= 8 or threads <= 1:
            for item in objects.items():
                put(item)
        else:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                for _ in pool.map(put, objects.items()):
                    pass
        return name

    def list_keys(self, name):
        """All keys in bucket `name` (boto3, exact), in listing order."""
        client = self.boto3_client()
        keys = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        return keys

    # -- lifecycle --------------------------------------------------------------------------
    def start(self):
        raise NotImplementedError

    def stop(self):
        raise NotImplementedError

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, self.endpoint_url if self.port else "stopped")


class MotoServer(S3Server):
    """moto's standalone server (``python -m moto.server``) as a subprocess on a free port.

    moto accepts any credentials and checks no signatures; a random key/secret is used anyway.
    """

    keeps_alive = False  # moto answers "Connection: close" and closes each connection

    def __init__(self, port=None, start_timeout=60):
        self.port = port
        self.key = "MOTO" + _random_token(16).upper()
        self.secret = _random_token(40)
        self.start_timeout = start_timeout
        self.proc = None
        self.logdir = None
        self.start_seconds = None

    @property
    def log_path(self):
        return os.path.join(self.logdir, "moto.log") if self.logdir else None

    def start(self):
        if self.proc is not None:
            return self
        t0 = time.monotonic()
        self.logdir = tempfile.mkdtemp(prefix="bareos-libcloud-moto-")
        if self.port is None:
            self.port = free_port()
        env = dict(os.environ)
        # moto reads these for anything not signed into a request; keep them out of the user's.
        env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        atexit.register(self.stop)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                out = _tail(self.log_path)
                self.stop()
                raise RuntimeError("moto server exited with %s:\n%s" % (self.proc_rc, out))
            try:
                with urllib.request.urlopen(self.endpoint_url + "/moto-api/", timeout=2):
                    break
            except urllib.error.HTTPError:
                break  # any HTTP answer means it is serving
            except OSError:
                if time.monotonic() > deadline:
                    out = _tail(self.log_path)
                    self.stop()
                    raise RuntimeError("moto server did not answer within %ss:\n%s"
                                       % (self.start_timeout, out))
                time.sleep(0.05)
        self.start_seconds = time.monotonic() - t0
        return self

    proc_rc = None

    def stop(self):
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self.proc_rc = proc.returncode
        try:
            atexit.unregister(self.stop)
        except Exception:  # noqa: BLE001
            pass
        if self.logdir:
            shutil.rmtree(self.logdir, ignore_errors=True)
            self.logdir = None

    def reset(self):
        """Drop all buckets and objects (moto's reset API)."""
        req = urllib.request.Request(self.endpoint_url + "/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).close()


class RadosGW(S3Server):
    """A throw-away single-node Ceph with radosgw (``MiniCeph`` of tests/miniceph.py).

    Everything lives in a private temp dir (``ceph_dir``), the ports are free ones (a block of
    100 below the ephemeral range: the monitor's ``mon_port`` and ``mon_port + 1``, the S3
    endpoint ``mon_port + 2``, the daemons' own in ``mon_port + 10 .. + 99``), and the S3 user
    gets a random key and secret. ``stop()`` kills the daemons (SIGKILL: the data is thrown
    away anyway; ``graceful_stop=True`` sends SIGTERM first, which takes about 10 s), reaps
    them and removes the directory. Needs ``apt-get install -y --no-install-recommends ceph-mon
    ceph-osd radosgw``; check ``RadosGW.available()`` first.
    """

    TOOLS = miniceph.TOOLS
    DAEMONS = miniceph.STOP_ORDER
    region = "default"

    def __init__(self, store="memstore", store_bytes=4 << 30, with_mgr=False,
                 start_timeout=300, graceful_stop=False):
        self.store = store
        self.graceful_stop = graceful_stop
        self.store_bytes = store_bytes
        self.with_mgr = with_mgr
        self.start_timeout = start_timeout
        self.key = _random_token(20, string.ascii_uppercase + string.digits)
        self.secret = _random_token(40)
        self.port = None
        self.mon_port = None
        self.tmpdir = None
        self.ceph_dir = None
        self.cluster = None
        self.start_seconds = None
        self.start_output = ""

    # -- availability ---------------------------------------------------------------------
    @classmethod
    def missing(cls):
        """What is missing to run radosgw here (empty list: available)."""
        return ["%s (not on PATH)" % t for t in miniceph.missing_tools()]

    @classmethod
    def available(cls):
        return not cls.missing()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self):
        if self.ceph_dir is not None:
            return self
        missing = miniceph.missing_tools(self.with_mgr)
        if missing:
            raise RuntimeError("radosgw not available: missing %s (not on PATH)" % ", ".join(missing))
        t0 = time.monotonic()
        self.tmpdir = tempfile.mkdtemp(prefix="bareos-libcloud-rgw-")
        atexit.register(self.stop)
        for attempt in range(3):
            self.ceph_dir = os.path.join(self.tmpdir, "ceph%d" % attempt)
            self.mon_port = _free_port_block(100)
            self.port = self.mon_port + 2
            self.cluster = miniceph.MiniCeph(self.ceph_dir, self.mon_port, self.port, store=self.store,
                                         store_bytes=self.store_bytes, with_mgr=self.with_mgr)
            try:
                remaining = max(1, self.start_timeout - (time.monotonic() - t0))
                self.cluster.start(timeout=remaining)
                self.cluster.create_s3_user("test", self.key, self.secret)
            except miniceph.CephError as e:
                self.cluster.stop()
                if e.port_clash and attempt < 2:  # another process took a port: elsewhere
                    continue
                self.stop()
                raise RuntimeError("the Ceph cluster for radosgw did not start: %s" % e) from None
            break
        self.start_output = self.cluster.report()
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self):
        if self.ceph_dir is None:
            return
        try:
            if self.cluster is not None:
                self.cluster.stop(graceful=self.graceful_stop)
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.ceph_dir = self.tmpdir = self.cluster = None
            try:
                atexit.unregister(self.stop)
            except Exception:  # noqa: BLE001
                pass

    def log_dir(self):
        return os.path.join(self.ceph_dir, "log") if self.ceph_dir else None

class Azurite:
    """Azurite, Microsoft's Azure Blob Storage emulator (npm package ``azurite``), on a free port.

    It is the plugin's real server outside the S3 family: libcloud's ``AZURE_BLOBS`` driver
    lists and reads through its generic code paths there.  ``run.py test`` installs it with npm
    into ``.venv/azurite``; ``AZURITE_BLOB`` may name another ``azurite-blob``.  The account
    (name and key) is a random one of this instance (``AZURITE_ACCOUNTS``), not the well-known
    development account, so a leaked secret in a test's output is this instance's.
    """

    provider = "AZURE_BLOBS"
    host = HOST
    VERSION = "3.35.0"

    def __init__(self, start_timeout=60):
        import base64

        self.key = "acct" + _random_token(8, string.ascii_lowercase + string.digits)
        self.secret = base64.b64encode(secrets.token_bytes(64)).decode()
        self.start_timeout = start_timeout
        self.port = None
        self.proc = None
        self.tmpdir = None

    @staticmethod
    def executable():
        """The ``azurite-blob`` to run, or None."""
        configured = os.environ.get("AZURITE_BLOB")
        if configured:
            return configured
        local = os.path.join(repo_root(), ".venv", "azurite", "node_modules", ".bin", "azurite-blob")
        return local if os.access(local, os.X_OK) else shutil.which("azurite-blob")

    @classmethod
    def missing(cls):
        """What is missing to run it ([] when it can run)."""
        out = []
        if shutil.which("node") is None:
            out.append("node (Node.js) not on PATH")
        if cls.executable() is None:
            out.append("azurite-blob (npm install --prefix .venv/azurite azurite@%s)" % cls.VERSION)
        return out

    @property
    def endpoint_url(self):
        return "http://%s:%d/%s" % (self.host, self.port, self.key)

    def plugin_options(self, region=True):
        """Plugin option string fragment, without leading or trailing ':'."""
        return "provider=%s:key=%s:secret=%s:host=%s:port=%d:secure=false" % (
            self.provider, self.key, self.secret, self.host, self.port)

    def libcloud_driver(self, **kwargs):
        from libcloud.storage.providers import Provider, get_driver

        cls = get_driver(Provider.AZURE_BLOBS)
        return cls(self.key, self.secret, host=self.host, port=self.port, secure=False, **kwargs)

    def make_bucket(self, name, objects=None):
        """Create container ``name`` and upload ``objects`` ({key: bytes}) with libcloud."""
        drv = self.libcloud_driver()
        container = drv.create_container(name)
        for key, data in (objects or {}).items():
            drv.upload_object_via_stream(iter([data]), container, key)
        return name

    def objects(self, name):
        """``{key: bytes}`` of everything in container ``name``."""
        drv = self.libcloud_driver()
        container = drv.get_container(name)
        return {o.name: b"".join(drv.download_object_as_stream(o)) for o in drv.list_container_objects(container)}

    def start(self):
        if self.proc is not None:
            return self
        exe = self.executable()
        if exe is None:
            raise RuntimeError("azurite-blob is not installed: %s" % "; ".join(self.missing()))
        self.tmpdir = tempfile.mkdtemp(prefix="bareos-libcloud-azurite-")
        self.port = free_port()
        env = dict(os.environ, AZURITE_ACCOUNTS="%s:%s" % (self.key, self.secret))
        log_path = os.path.join(self.tmpdir, "azurite.log")
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [exe, "--blobHost", HOST, "--blobPort", str(self.port), "--location", os.path.join(self.tmpdir, "data"),
                 "--disableTelemetry", "--silent", "--skipApiVersionCheck"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)
        atexit.register(self.stop)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                out = _tail(log_path)
                self.stop()
                raise RuntimeError("azurite exited:\n%s" % out)
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    out = _tail(log_path)
                    self.stop()
                    raise RuntimeError("azurite did not listen within %ss:\n%s" % (self.start_timeout, out))
                time.sleep(0.05)
        return self

    def stop(self):
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        try:
            atexit.unregister(self.stop)
        except Exception:  # noqa: BLE001
            pass
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Swift:
    """OpenStack Swift itself (PyPI package ``swift``) on 127.0.0.1: a proxy and one account,
    container and object server, each a single process (``workers = 0``), for the plugin's
    ``OPENSTACK_SWIFT`` provider.

    ``run.py test`` installs Swift into its own virtualenv ``.venv/swift`` (eventlet and the
    other dependencies of Swift stay out of the tests' venv); ``SWIFT_VENV`` may name another
    virtualenv with ``swift`` installed.  Everything lives in a private temporary directory:
    ``swift.conf``, rings of one replica and one device (built in one run of Swift's
    ``RingBuilder``), the servers' configuration files, the device (a plain directory,
    ``mount_check = false``) and one log file per server.  The ports are a free block of four
    below the ephemeral range.  The proxy's pipeline is ``catch_errors proxy-logging
    proxy-server`` with ``account_autocreate``: no auth middleware, so any token opens account
    ``AUTH_test`` and the plugin connects with ``ex_force_auth_token`` and ``ex_force_base_url``
    (``key`` and ``secret`` are required by libcloud but not checked).  The key, secret and
    token are random anyway, so that a leak in a test's output is caught.

    A container listing answers at most ``listing_limit`` objects a page (Swift's
    ``container_listing_limit``, 10000 by default, 5 here), so that a dozen objects take
    several pages.  The servers log to their files, not to syslog, and read the private
    swift.conf's constraints and storage policies, not /etc/swift's (``_SWIFT_SITE``).  They run
    as children of this process, each in its own session, with Linux's parent-death signal set;
    ``stop()`` kills (SIGKILL: the data is thrown away) and reaps them and removes the directory.

    Uploads go through :meth:`request` (plain HTTP), not libcloud: libcloud 3.9.1's Swift driver
    refuses its own uploads from a stream (it compares the server's ETag with the MD5 of nothing).
    """

    provider = "OPENSTACK_SWIFT"
    host = HOST
    VERSION = "2.38.3"
    ACCOUNT = "AUTH_test"
    SERVERS = ("account", "container", "object", "proxy")  # started in this order
    SITE = "bareos_libcloud_swift_site"  # the module of _SWIFT_SITE, in the temp dir

    def __init__(self, start_timeout=60, listing_limit=5):
        self.key = "swift" + _random_token(12)
        self.secret = _random_token(40)
        self.token = _random_token(32)
        self.start_timeout = start_timeout
        self.listing_limit = listing_limit
        self.port = None
        self.ports = {}
        self.procs = {}
        self.tmpdir = None
        self.conf_dir = None
        self.start_seconds = None

    # -- availability ---------------------------------------------------------------------
    @staticmethod
    def venv():
        """The virtualenv that holds Swift (``SWIFT_VENV`` or ``.venv/swift``), or None."""
        configured = os.environ.get("SWIFT_VENV")
        venv = configured or os.path.join(repo_root(), ".venv", "swift")
        if os.access(os.path.join(venv, "bin", "swift-proxy-server"), os.X_OK):
            return venv
        return None

    @classmethod
    def missing(cls):
        """What is missing to run it ([] when it can run)."""
        if cls.venv() is not None:
            return []
        where = "SWIFT_VENV=%s" % os.environ["SWIFT_VENV"] if os.environ.get("SWIFT_VENV") else ".venv/swift"
        return ["swift %s in %s" % (cls.VERSION, where)]

    # -- connection details -------------------------------------------------------------------
    @property
    def endpoint_url(self):
        return "http://%s:%d/v1/%s" % (self.host, self.port, self.ACCOUNT)

    def plugin_options(self, region=True, port=None):
        """Plugin option string fragment, without leading or trailing ':'.  ``port``: another
        port for the endpoint (a FaultProxy's).  A ':' inside a value is written ``\\:``."""
        url = "http://%s:%d/v1/%s" % (self.host, port or self.port, self.ACCOUNT)
        return "provider=%s:key=%s:secret=%s:ex_force_auth_token=%s:ex_force_base_url=%s" % (
            self.provider, self.key, self.secret, self.token, url.replace(":", "\\:"))

    def libcloud_driver(self, **kwargs):
        from libcloud.storage.providers import Provider, get_driver

        cls = get_driver(Provider.OPENSTACK_SWIFT)
        return cls(self.key, self.secret, ex_force_auth_token=self.token, ex_force_base_url=self.endpoint_url,
                   **kwargs)

    def request(self, method, path, body=None, query=None, connection=None, headers=None):
        """``(status, headers, body)`` of one request to ``/v1/AUTH_test/<path>`` (``path`` is
        percent-encoded here, ``query`` a dict), on ``connection`` or a new one."""
        import http.client

        target = "/v1/%s/%s" % (self.ACCOUNT, urllib.parse.quote(path.encode("utf-8"), safe="/"))
        if query:
            target += "?" + urllib.parse.urlencode(query)
        conn = connection or http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(method, target, body=body, headers=dict(headers or {}, **{"X-Auth-Token": self.token}))
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            if connection is None:
                conn.close()

    def _checked(self, method, path, body=None, query=None, connection=None, headers=None):
        status, headers, data = self.request(method, path, body, query, connection, headers)
        if status not in (200, 201, 202, 204):
            raise RuntimeError("Swift answered %s %r with %d: %r" % (method, path, status, data[:300]))
        return headers, data

    def make_bucket(self, name, objects=None):
        """Create container ``name`` and upload ``objects`` ({key: bytes}), each key exactly."""
        import http.client

        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            self._checked("PUT", name, b"", connection=conn)
            for key, data in (objects or {}).items():
                headers, _ = self._checked("PUT", "%s/%s" % (name, key), data, connection=conn)
                if headers.get("Etag") != hashlib.md5(data).hexdigest():
                    raise RuntimeError("Swift stored %r of %s with ETag %s" % (key, name, headers.get("Etag")))
        finally:
            conn.close()
        return name

    def put(self, name, key, data, headers=None):
        """Upload (or overwrite) one object (``headers``: e.g. ``X-Object-Manifest``)."""
        self._checked("PUT", "%s/%s" % (name, key), data, headers=headers)

    def delete(self, name, key):
        self._checked("DELETE", "%s/%s" % (name, key))

    def listing(self, name):
        """Swift's JSON listing of container ``name`` (``name``, ``bytes``, ``hash``,
        ``last_modified`` of each object), page after page (at most ``listing_limit`` each)."""
        items = []
        while True:
            query = dict(format="json", marker=items[-1]["name"]) if items else dict(format="json")
            page = json.loads(self._checked("GET", name, query=query)[1])
            if not page:
                return items
            items += page

    def list_keys(self, name):
        """Every key in container ``name``, in listing order."""
        return [item["name"] for item in self.listing(name)]

    def objects(self, name):
        """``{key: bytes}`` of everything in container ``name``."""
        return {key: self._checked("GET", "%s/%s" % (name, key))[1] for key in self.list_keys(name)}

    # -- lifecycle --------------------------------------------------------------------------
    def log_path(self, server):
        return os.path.join(self.tmpdir, "log", "%s.log" % server) if self.tmpdir else None

    def start(self):
        if self.procs:
            return self
        venv = self.venv()
        if venv is None:
            raise RuntimeError("Swift is not installed: %s" % "; ".join(self.missing()))
        t0 = time.monotonic()
        self.tmpdir = tempfile.mkdtemp(prefix="bareos-libcloud-swift-")
        atexit.register(self.stop)
        for attempt in range(3):
            base = _free_port_block(4)
            self.ports = {name: base + i for i, name in enumerate(("proxy", "account", "container", "object"))}
            self.port = self.ports["proxy"]
            try:
                self._write_config(attempt)
                rings = self._build_rings(venv)
                for server in self.SERVERS[:-1]:  # they read no ring: they start while the rings are built
                    self._launch(venv, server)
                self._rings_built(rings)
                self._launch(venv, "proxy")
                self._wait_until_serving(t0)
            except _PortClash:
                self._kill()
                if attempt < 2:
                    continue
                self.stop()
                raise RuntimeError("Swift: the ports of three free blocks were taken while it started") from None
            except RuntimeError:
                self.stop()
                raise
            break
        self.start_seconds = time.monotonic() - t0
        return self

    def _write_config(self, attempt):
        import pwd

        try:
            user = pwd.getpwuid(os.getuid()).pw_name  # Swift's servers "drop privileges" to it
        except KeyError:
            raise RuntimeError("Swift needs a user name for uid %d (no passwd entry)" % os.getuid()) from None
        self.conf_dir = os.path.join(self.tmpdir, "etc%d" % attempt)
        devices = os.path.join(self.tmpdir, "srv%d" % attempt)
        for path in (self.conf_dir, os.path.join(devices, "d1"), os.path.join(self.tmpdir, "log"),
                     os.path.join(self.tmpdir, "cache")):
            os.makedirs(path, exist_ok=True)
        with open(os.path.join(self.conf_dir, "swift.conf"), "w") as f:
            f.write("[swift-hash]\nswift_hash_path_suffix = %s\n\n"
                    "[storage-policy:0]\nname = one\ndefault = yes\n\n"
                    "[swift-constraints]\ncontainer_listing_limit = %d\n"
                    % (_random_token(16), self.listing_limit))
        with open(os.path.join(self.tmpdir, self.SITE + ".py"), "w") as f:
            f.write(_SWIFT_SITE)
        common = ("[DEFAULT]\nbind_ip = %s\nbind_port = %%d\nbind_timeout = 1\nworkers = 0\nuser = %s\n"
                  "swift_dir = %s\ndevices = %s\nmount_check = false\ndisable_fallocate = true\n"
                  "recon_cache_path = %s\n"
                  "log_custom_handlers = %s.log_to_stderr\n\n"
                  % (HOST, user, self.conf_dir, devices, os.path.join(self.tmpdir, "cache"),
                     self.SITE))
        apps = {
            "account": "[pipeline:main]\npipeline = account-server\n\n"
                       "[app:account-server]\nuse = egg:swift#account\n",
            "container": "[pipeline:main]\npipeline = container-server\n\n"
                         "[app:container-server]\nuse = egg:swift#container\n",
            "object": "[pipeline:main]\npipeline = object-server\n\n"
                      "[app:object-server]\nuse = egg:swift#object\n",
            "proxy": "[pipeline:main]\npipeline = catch_errors proxy-logging proxy-server\n\n"
                     "[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\n\n"
                     "[filter:catch_errors]\nuse = egg:swift#catch_errors\n\n"
                     "[filter:proxy-logging]\nuse = egg:swift#proxy_logging\nreveal_sensitive_prefix = 0\n",
        }
        for server, app in apps.items():
            with open(os.path.join(self.conf_dir, "%s-server.conf" % server), "w") as f:
                f.write(common % self.ports[server] + app)

    def _environment(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.update(PYTHONPATH=self.tmpdir, PYTHONWARNINGS="ignore")
        return env

    def _build_rings(self, venv):
        """Start building the account, container and object rings (one device each, one
        replica) in one process, which :meth:`_rings_built` waits for."""
        script = ("import sys\nfrom swift.common.ring import RingBuilder\n"
                  "for name, port in zip(('account', 'container', 'object'), sys.argv[2:]):\n"
                  "    b = RingBuilder(6, 1, 0)\n"
                  "    b.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '%s', 'port': int(port),\n"
                  "               'device': 'd1', 'weight': 1.0})\n"
                  "    b.rebalance()\n"
                  "    b.get_ring().save('%%s/%%s.ring.gz' %% (sys.argv[1], name))\n" % HOST)
        return subprocess.Popen([os.path.join(venv, "bin", "python"), "-c", script, self.conf_dir]
                                + [str(self.ports[s]) for s in ("account", "container", "object")],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=self._environment(), text=True)

    def _rings_built(self, proc):
        try:
            out, _ = proc.communicate(timeout=self.start_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError("Swift's rings could not be built (exit %d):\n%s" % (proc.returncode, out[-3000:]))

    def _launch(self, venv, server):
        command = [os.path.join(venv, "bin", "python"), os.path.join(venv, "bin", "swift-%s-server" % server),
                   os.path.join(self.conf_dir, "%s-server.conf" % server), "--verbose"]
        with open(self.log_path(server), "ab") as log:
            self.procs[server] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self._environment(),
                start_new_session=True, preexec_fn=miniceph._parent_death_signal())

    def _check_running(self):
        """Raise for a server that exited: _PortClash when another process had taken its port."""
        for server, proc in self.procs.items():
            if proc.poll() is not None:
                out = _tail(self.log_path(server))
                if "Could not bind to" in out:
                    raise _PortClash()
                raise RuntimeError("swift-%s-server exited with %s:\n%s" % (server, proc.returncode, out))

    def _wait_until_serving(self, t0):
        """Until every server accepts connections, then until an object goes through the proxy
        (written, read, deleted, in a container of its own, which is deleted too): that reaches
        all four servers."""
        import http.client

        deadline = t0 + self.start_timeout
        for server in self.SERVERS:
            while True:
                self._check_running()
                try:
                    socket.create_connection((HOST, self.ports[server]), timeout=1).close()
                    break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("swift-%s-server did not listen within %ss:\n%s"
                                       % (server, self.start_timeout, _tail(self.log_path(server))))
                time.sleep(0.05)
        probe = "bareos-libcloud-probe-%s" % _random_token(8)
        try:
            self._checked("PUT", probe, b"")
            self._checked("PUT", probe + "/o", b"probe")
            if self._checked("GET", probe + "/o")[1] != b"probe":
                raise RuntimeError("an object read back is not what was written")
            self._checked("DELETE", probe + "/o")
            self._checked("DELETE", probe)
        except (OSError, http.client.HTTPException, RuntimeError) as e:
            self._check_running()
            raise RuntimeError("Swift does not store objects: %s\n%s" % (e, _tail(self.log_path("proxy")))) from None
        self._check_running()

    def _kill(self):
        procs, self.procs = self.procs, {}
        for proc in procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    proc.kill()
        for proc in procs.values():
            proc.wait()

    def stop(self):
        """Kill and reap every server, remove the directory (a second call does nothing)."""
        self._kill()
        atexit.unregister(self.stop)
        tmpdir, self.tmpdir = self.tmpdir, None
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "<Swift %s>" % (self.endpoint_url if self.procs else "stopped")


class _PortClash(Exception):
    """A Swift server found its port taken (another process bound it after the check)."""


#: A module each Swift server imports through its ``log_custom_handlers`` hook, once it has read
#: its configuration directory.  Swift reads its constraints and storage policies from
#: /etc/swift/swift.conf only (when its modules are imported), whatever ``swift_dir`` says: they
#: are read again here from the private swift.conf (so a host's own Swift settings do not leak in,
#: and ``container_listing_limit`` applies; two modules keep their own copy of it).  The hook
#: drops the syslog handler Swift adds to every logger (``/dev/log``, or UDP to localhost:514
#: without it), which leaves the console handler of ``--verbose``: stderr, the server's log file.
_SWIFT_SITE = """\
import logging.handlers
import sys

from swift.common import constraints, request_helpers, storage_policy

constraints.reload_constraints()
storage_policy.reload_storage_policies()
for module in (request_helpers, sys.modules.get("swift.proxy.controllers.container")):
    if module is not None:
        module.CONTAINER_LISTING_LIMIT = constraints.CONTAINER_LISTING_LIMIT


def log_to_stderr(conf, name, log_to_console, log_route, fmt, logger, adapted_logger):
    for handler in list(logger.handlers):
        if isinstance(handler, logging.handlers.SysLogHandler):
            logger.removeHandler(handler)
            handler.close()
"""


SERVERS = {"moto": MotoServer, "rgw": RadosGW, "azurite": Azurite, "swift": Swift}
USAGE = "usage: python3 tests/servers.py {%s}" % "|".join(SERVERS)


def main(argv):
    """``python3 tests/servers.py moto|rgw|azurite``: start that server, print how to reach it,
    keep it up until Ctrl-C (or SIGTERM)."""
    if len(argv) != 1 or argv[0] not in SERVERS:
        print(USAGE, file=sys.stderr)
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (`cmd &`)
        signal.signal(signum, signal.default_int_handler)
    srv = SERVERS[argv[0]]()
    t0 = time.monotonic()
    with srv:
        try:  # a Ctrl-C right after the last line (a test sends one) must not escape as a traceback
            print("%s up in %.1fs at %s" % (type(srv).__name__, time.monotonic() - t0, srv.endpoint_url))
            print("plugin options:", srv.plugin_options())
            print("key=%s secret=%s region=%s" % (srv.key, srv.secret, getattr(srv, "region", None)),
                  flush=True)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
