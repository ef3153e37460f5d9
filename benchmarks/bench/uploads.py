"""Uploading the data sets (boto3 for contents, SigV4 over http.client for many small PUTs)."""

import hashlib
import http.client
import multiprocessing
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from .common import MiB, SEED
from .dataset import object_bytes
from .s3client import SigV4, object_path


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
        path = object_path(bucket, key_of(i))
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


def list_key(i):
    return "%02d/obj-%08d" % (i % 50, i)


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
