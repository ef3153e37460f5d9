"""The server's raw limit, (c) and (e): processes doing signed GETs, and the ceiling of any plugin."""

import hashlib
import http.client
import multiprocessing
import tempfile
import time

from .common import MiB
from .s3client import SigV4, boto3_client, object_path


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
            self.client = boto3_client(spec, 4)
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
        path = object_path(self.bucket, key)
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
