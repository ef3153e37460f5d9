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
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import miniceph  # tests/miniceph.py, beside this file

__all__ = ["S3Server", "MotoServer", "RadosGW", "Azurite", "free_port", "repo_root"]

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


SERVERS = {"moto": MotoServer, "rgw": RadosGW, "azurite": Azurite}
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
        print("%s up in %.1fs at %s" % (type(srv).__name__, time.monotonic() - t0, srv.endpoint_url))
        print("plugin options:", srv.plugin_options())
        print("key=%s secret=%s region=%s" % (srv.key, srv.secret, getattr(srv, "region", None)),
              flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
