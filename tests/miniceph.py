"""A throw-away single-node Ceph cluster with radosgw on 127.0.0.1, for the tests (no pytest).

    cluster = MiniCeph(directory, base_port=23400, rgw_port=23402)
    cluster.start()                                  # mon, osd, radosgw: about 2 s
    cluster.create_s3_user("test", key, secret)      # radosgw-admin
    ...                                              # S3 at http://127.0.0.1:23402
    cluster.stop()                                   # kills and reaps every daemon

Needs Debian's ``ceph-mon``, ``ceph-osd`` and ``radosgw`` packages (Ceph 16 "Pacific" on
Debian 12): the daemons and the command-line tools ``monmaptool``, ``ceph`` and
``radosgw-admin`` they bring.  No systemd, no ``/etc/ceph``, no ``/var/lib/ceph``: the whole
cluster (configuration, keys, monitor store, OSD store, logs, pid files) lives in ``directory``.

How the cluster is built (the manual deployment of Ceph's documentation, cut down to one host):

1. ``ceph.conf`` and one keyring with a cephx key for every entity (mon., client.admin, osd.0,
   client.rgw.x and mgr.x), generated here.  One OSD, so pools have one replica, few placement
   groups and no autoscaler.  The monitor's paxos proposal interval is 50 ms instead of 1 s:
   radosgw's first start creates its pools one monitor write at a time.
2. ``monmaptool --create`` then ``ceph-mon --mkfs`` (which imports the keyring), while
   ``ceph-osd --mkfs`` formats the OSD's store at the same time: it needs only the fsid.
3. ``ceph-mon``; once its port accepts connections, ``ceph osd new <uuid> 0`` registers the OSD.
4. ``ceph-osd``, then ``radosgw`` at once: radosgw waits for the OSD by itself (its pools become
   usable when the OSD is up), until it answers ``GET /`` with 200.
5. The S3 user: ``radosgw-admin user create`` with the given access key and secret.

The OSD store is ``memstore`` (in RAM, ``store_bytes`` of capacity: the default) or ``bluestore``
on a sparse file ``osd.0/block`` of ``store_bytes``.  Every daemon runs in the foreground as a
child of this process (``-f``), in its own session, with its log in ``log/`` and its pid written
to ``run/<name>.pid``.  Linux's parent-death signal kills them should this process die without
calling ``stop()`` (it is delivered when the thread that called ``start()`` exits: call
``start()`` from a thread that lives as long as the cluster should).

Ports: ``base_port`` is the monitor's (msgr v2), ``base_port + 1`` its msgr v1 port, and the OSD
and radosgw's client side bind in ``base_port + 10 .. base_port + 99``; ``rgw_port`` is the S3
endpoint.  The caller picks free ones.
"""

import base64
import ctypes
import ctypes.util
import errno
import http.client
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid

HOST = "127.0.0.1"
TOOLS = ("ceph-mon", "ceph-osd", "radosgw", "monmaptool", "ceph", "radosgw-admin")
#: entity -> caps of the keyring (the osd and mgr profiles are Ceph's own)
ENTITIES = {
    "mon.": {"mon": "allow *"},
    "client.admin": {"mon": "allow *", "osd": "allow *", "mgr": "allow *", "mds": "allow *"},
    "osd.0": {"mon": "allow profile osd", "mgr": "allow profile osd", "osd": "allow *"},
    "mgr.x": {"mon": "allow profile mgr", "osd": "allow *", "mds": "allow *"},
    "client.rgw.x": {"mon": "allow rw", "osd": "allow rwx", "mgr": "allow rw"},
}
#: daemon name (as in pid and log files) -> its command line after ``-c ceph.conf``
DAEMONS = {
    "mon.a": ["ceph-mon", "-i", "a"],
    "mgr.x": ["ceph-mgr", "-i", "x"],
    "osd.0": ["ceph-osd", "-i", "0"],
    "client.rgw.x": ["radosgw", "-n", "client.rgw.x"],
}
STOP_ORDER = ("client.rgw.x", "osd.0", "mgr.x", "mon.a")


class CephError(RuntimeError):
    """A step of the cluster's start failed; the message ends with the relevant log lines."""

    def __init__(self, message, port_clash=False):
        super().__init__(message)
        self.port_clash = port_clash  # a daemon found its port taken: worth a retry elsewhere


def missing_tools(with_mgr=False):
    """The programs that are not on PATH ([] when the cluster can start)."""
    tools = TOOLS + (("ceph-mgr",) if with_mgr else ())
    return [t for t in tools if shutil.which(t) is None]


def cephx_key():
    """A new cephx secret as keyrings spell it: base64 of Ceph's encoded CryptoKey (type 1 = AES,
    creation time as seconds and nanoseconds, then the 16-byte secret with its length)."""
    now = time.time()
    raw = struct.pack("<HIIH", 1, int(now), int((now % 1) * 1e9), 16) + secrets.token_bytes(16)
    return base64.b64encode(raw).decode("ascii")


def keyring_text(entities=ENTITIES):
    lines = []
    for name, caps in entities.items():
        lines += ["[%s]" % name, "\tkey = %s" % cephx_key()]
        lines += ['\tcaps %s = "%s"' % item for item in caps.items()]
    return "\n".join(lines) + "\n"


def _parent_death_signal():
    """preexec_fn for the daemons: SIGKILL them when the thread that started them exits
    (Linux prctl PR_SET_PDEATHSIG); does nothing where that is not available."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    parent = os.getpid()

    def set_signal():
        libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:     # the parent died before prctl: do not linger
            os._exit(1)

    return set_signal


def tool_environment():
    """The environment for Ceph's programs: ours without what would change how they run
    (``CEPH_ARGS`` is added to every command line; ``ceph`` is a Python script of the system's
    python3, which a virtualenv's or a test run's PYTHONPATH must not reach)."""
    drop = ("CEPH_ARGS", "CEPH_CONF", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH")
    return {k: v for k, v in os.environ.items() if k not in drop}


def tail(path, lines=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


class MiniCeph:
    """One ceph-mon, one ceph-osd, one radosgw (and with ``with_mgr`` one ceph-mgr) in
    ``directory``, which must be empty or absent and which ``stop()`` leaves in place."""

    def __init__(self, directory, base_port, rgw_port, store="memstore", store_bytes=4 << 30,
                 with_mgr=False):
        if store not in ("memstore", "bluestore"):
            raise ValueError("store must be memstore or bluestore, not %r" % (store,))
        self.dir = os.path.abspath(directory)
        self.base_port = base_port
        self.rgw_port = rgw_port
        self.store = store
        self.store_bytes = store_bytes
        self.with_mgr = with_mgr
        self.fsid = str(uuid.uuid4())
        self.osd_uuid = str(uuid.uuid4())
        self.env = tool_environment()
        self.procs = {}    # daemon name -> Popen
        self.steps = []    # (what, seconds since start) for the start's report
        self._t0 = time.monotonic()
        self._preexec = None

    # -- files ------------------------------------------------------------------------------
    @property
    def conf(self):
        return os.path.join(self.dir, "ceph.conf")

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def log_path(self, name):
        return self.path("log", name + ".log")

    def conf_text(self):
        d, p = self.dir, self.base_port
        return """\
[global]
fsid = {fsid}
mon host = [v2:{host}:{p},v1:{host}:{p1}]
public addr = {host}
ms bind port min = {pmin}
ms bind port max = {pmax}
keyring = {d}/keyring
run dir = {d}/run
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log
log to stderr = false
err to stderr = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
paxos propose interval = 0.05

[mon]
mon data = {d}/mon.$id

[mgr]
mgr data = {d}/mgr.$id

[osd]
osd data = {d}/osd.$id
osd objectstore = {store}
osd crush initial weight = 1
memstore device bytes = {nbytes}
bluestore block create = true
bluestore block size = {nbytes}
bluestore fsck on mkfs = false
bluestore fsck on mount = false
osd memory target = 1073741824

[client.rgw.x]
rgw frontends = beast endpoint={host}:{rgw} tcp_nodelay=1
rgw data = {d}/rgw.x
""".format(fsid=self.fsid, host=HOST, p=p, p1=p + 1, pmin=p + 10, pmax=p + 99, d=d,
           store=self.store, nbytes=self.store_bytes, rgw=self.rgw_port)
        # tcp_nodelay: without it every small GET waits ~40 ms (Nagle's algorithm against
        # delayed ACKs). The OSD's memory target bounds bluestore's cache (4 GiB by default).

    def _write_files(self):
        os.makedirs(self.dir, exist_ok=True)
        if os.listdir(self.dir):
            raise CephError("%s is not empty" % self.dir)
        for sub in ("mon.a", "mgr.x", "osd.0", "rgw.x", "run", "log"):
            os.mkdir(self.path(sub))
        with open(self.conf, "w") as f:
            f.write(self.conf_text())
        fd = os.open(self.path("keyring"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(keyring_text())

    # -- running things ---------------------------------------------------------------------
    def _mark(self, what):
        self.steps.append((what, time.monotonic() - self._t0))

    def _run(self, name, argv, timeout):
        """Run a tool to completion; its output goes to log/<name>.out. Returns its stdout."""
        out_path = self.path("log", name + ".out")
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=self.env, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            self._save(out_path, e.stdout)
            raise CephError("%s did not finish within %ss:\n%s"
                            % (" ".join(argv[:4]), timeout, tail(out_path)))
        self._save(out_path, r.stdout)
        if r.returncode != 0:
            raise CephError("%s exited with %d:\n%s" % (" ".join(argv[:4]), r.returncode,
                                                         tail(out_path)))
        return r.stdout.decode(errors="replace")

    @staticmethod
    def _save(path, data):
        with open(path, "ab") as f:
            f.write(data or b"")

    def _spawn(self, name, argv):
        """Start a daemon in the foreground as our child; write its pid file."""
        with open(self.path("log", name + ".out"), "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=self.env, start_new_session=True,
                                    preexec_fn=self._preexec)
        self.procs[name] = proc
        with open(self.path("run", name + ".pid"), "w") as f:
            f.write("%d\n" % proc.pid)
        return proc

    def _daemon(self, name):
        self._spawn(name, [DAEMONS[name][0], "-f", "-c", self.conf] + DAEMONS[name][1:])

    def _check_alive(self):
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                log = tail(self.log_path(name)) + tail(self.path("log", name + ".out"))
                # radosgw exits with the errno of a failed bind (98, EADDRINUSE), sometimes before
                # its log thread wrote the reason
                clash = proc.returncode == errno.EADDRINUSE or "Address already in use" in log
                raise CephError("%s exited with %s%s:\n%s" % (
                    name, proc.returncode, " (address already in use)" if clash else "", log),
                    port_clash=clash)

    def _wait(self, what, ready, deadline, log_name):
        while not ready():
            self._check_alive()
            if time.monotonic() > deadline:
                raise CephError("%s: not ready in time; %s:\n%s"
                                % (what, self.log_path(log_name), tail(self.log_path(log_name))))
            time.sleep(0.02)

    # -- readiness probes -------------------------------------------------------------------
    def _accepts(self, port):
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return True
        except OSError:
            return False

    def _s3_answers(self):
        """radosgw answers an anonymous ``GET /`` (an empty bucket list) with 200."""
        conn = http.client.HTTPConnection(HOST, self.rgw_port, timeout=2)
        try:
            conn.request("GET", "/")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, timeout=300):
        """Build and start the cluster; raises CephError (after stopping what it started)."""
        self._t0 = time.monotonic()
        deadline = self._t0 + timeout
        self._preexec = _parent_death_signal()
        missing = missing_tools(self.with_mgr)
        if missing:
            raise CephError("not on PATH: %s" % ", ".join(missing))
        try:
            self._write_files()
            self._mark("ceph.conf and keyring written")
            # the OSD's store needs only the fsid: format it while the monitor is made
            with open(self.path("log", "osd.0.mkfs.out"), "wb") as out:
                osd_mkfs = subprocess.Popen(
                    ["ceph-osd", "-c", self.conf, "-i", "0", "--mkfs", "--osd-uuid", self.osd_uuid],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env)
            try:
                monmap = self.path("monmap")
                self._run("monmaptool", ["monmaptool", "--create", "--fsid", self.fsid, "--addv", "a",
                                         "[v2:%s:%d,v1:%s:%d]" % (HOST, self.base_port, HOST,
                                                                  self.base_port + 1), monmap], 60)
                self._run("mon.a.mkfs", ["ceph-mon", "-c", self.conf, "--mkfs", "-i", "a",
                                         "--monmap", monmap, "--keyring", self.path("keyring")], 60)
                self._daemon("mon.a")
                rc = osd_mkfs.wait(max(1, deadline - time.monotonic()))
            finally:
                if osd_mkfs.poll() is None:  # the monitor failed, or the format took too long
                    osd_mkfs.kill()
                    osd_mkfs.wait()
            if rc != 0:
                raise CephError("ceph-osd --mkfs exited with %d:\n%s"
                                % (rc, tail(self.path("log", "osd.0.mkfs.out"))))
            self._wait("ceph-mon", lambda: self._accepts(self.base_port), deadline, "mon.a")
            self._mark("ceph-mon listening on %d" % self.base_port)
            if self.with_mgr:
                self._daemon("mgr.x")
            osd_id = self._run("osd-new", ["ceph", "-c", self.conf, "--connect-timeout", "60",
                                           "osd", "new", self.osd_uuid, "0"], 120).strip()
            if osd_id != "0":
                raise CephError("ceph osd new answered %r, expected 0" % osd_id)
            self._daemon("osd.0")
            self._daemon("client.rgw.x")
            self._mark("osd.0 registered, ceph-osd (%s) and radosgw started" % self.store)
            self._wait("radosgw", self._s3_answers, deadline, "client.rgw.x")
            self._mark("radosgw answering on http://%s:%d" % (HOST, self.rgw_port))
        except BaseException:
            self.stop()
            raise
        return self

    def create_s3_user(self, uid, key, secret, display_name="test user", timeout=120):
        """An S3 user with this access key and secret (``radosgw-admin user create``)."""
        self._run("user-create", ["radosgw-admin", "-c", self.conf, "user", "create",
                                  "--uid", uid, "--display-name", display_name,
                                  "--access-key", key, "--secret-key", secret], timeout)
        self._mark("S3 user %r created" % uid)

    def stop(self, graceful=False, grace=10):
        """Stop every daemon and reap it: SIGKILL at once (the data is thrown away anyway;
        radosgw alone needs seconds to exit on SIGTERM), or with ``graceful`` SIGTERM, in
        reverse start order, and SIGKILL after ``grace`` seconds."""
        for name in STOP_ORDER:
            proc = self.procs.pop(name, None)
            if proc is None:
                continue
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
                    proc.wait(grace if graceful else 10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            try:
                os.unlink(self.path("run", name + ".pid"))
            except OSError:
                pass

    def pids(self):
        """{daemon name: pid} of the daemons running now."""
        return {name: p.pid for name, p in self.procs.items() if p.poll() is None}

    def report(self):
        return "\n".join("[%5.2fs] %s" % (t, what) for what, t in self.steps)
