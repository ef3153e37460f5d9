"""Uploads of a restore into a bucket (the upload helper; job/upload.py is the job's side).

The job spools each restored object to a file and, once Bareos has given its metadata too
(set_xattr comes after the data: docs/bareos-api-notes.md), sends ``("put", seq, spec)``.
Threads of this process upload, each with its own libcloud driver, and answer one of::

    ("stored", seq, key)              uploaded and verified
    ("kept", seq, key, why)           not uploaded: Bareos's replace setting keeps the existing object
    ("error", seq, key, text)         not uploaded (after the retry policy's attempts)
    ("note", text)                    something of an object that did not go to the store (e.g.
                                      its tags, where the target provider has none); once per text

The spool file is the job's: it removes it after the answer.  ``("cancel",)`` makes every
upload in flight fail at its next chunk, and libcloud aborts an S3 multipart upload that fails
(no parts left to pay for).
"""

import hashlib
import queue
import threading

from .. import metadata, timeutil
from ..answers import FetchError, translate
from ..retry import Transient
from . import driver as driver_mod

#: Above this an S3-family upload goes in parts (libcloud's 5 MiB parts); below, one PUT
#: whose MD5 the store's ETag confirms.
MULTIPART_THRESHOLD = 64 * 1024 * 1024
PART_SIZE = 5 * 1024 * 1024  # libcloud's s3.CHUNK_SIZE: the parts the ETag is made of
#: Azure takes these headers under its own names; it has no Expires.
AZURE_HEADERS = {
    "Cache-Control": "x-ms-blob-cache-control",
    "Content-Disposition": "x-ms-blob-content-disposition",
    "Content-Encoding": "x-ms-blob-content-encoding",
    "Content-Language": "x-ms-blob-content-language",
}


class Cancelled(Exception):
    """The restore was cancelled: the upload stops (and libcloud aborts its multipart upload)."""


class Kept(Exception):
    """The replace setting keeps the object that exists."""


class Uploader:
    """The upload helper's state: its threads, the buckets it made sure of, the notes it sent."""

    def __init__(self, conn, config, send, retry_policy):
        self.conn, self.config, self.send = conn, config, send
        self.retry = retry_policy
        self.cancelled = threading.Event()
        self.requests = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.buckets = {}  # name -> Container
        self.notes = set()
        self.threads = [threading.Thread(target=self._serve, name="libcloud-upload", daemon=True)
                        for _ in range(max(1, config.get("threads", 4)))]

    def run(self, drv):
        self.spare = drv
        for thread in self.threads:
            thread.start()
        while True:
            message = self.conn.recv()
            if message[0] == "put":
                self.requests.put(message)
            elif message[0] == "cancel":
                self.cancelled.set()
            else:
                return

    def _driver(self):
        with self.lock:
            drv, self.spare = self.spare, None
        if drv is None:
            config = self.config
            drv = driver_mod.make_driver(config["provider"], config["driver_kwargs"], config["timeout"],
                                         config.get("ca_file"))
        return drv

    def _serve(self):
        drv = None
        while True:
            _, seq, spec = self.requests.get()
            key = spec["key"]
            try:
                if drv is None:
                    drv = self._driver()
                if self.cancelled.is_set():
                    raise Cancelled()
                self._upload(drv, spec)
                self.send(("stored", seq, key))
            except Kept as exc:
                self.send(("kept", seq, key, str(exc)))
            except Cancelled:
                self.send(("error", seq, key, "the restore was cancelled"))
            except FetchError as exc:
                self.send(("error", seq, key, str(exc)))
            except (BrokenPipeError, EOFError):
                return
            except Exception as exc:  # noqa: BLE001 - this object fails, the others go on
                self.send(("error", seq, key, "%s: %s" % (type(exc).__name__, exc)))

    def _note(self, text):
        with self.lock:
            if text in self.notes:
                return
            self.notes.add(text)
        self.send(("note", text))

    # -- one object ----------------------------------------------------------------------------
    def _upload(self, drv, spec):
        extra, headers, options = self._arguments(drv, spec)
        attempts = self.retry.start(spec["key"])
        while True:
            try:
                container = self._bucket(drv, spec["bucket"])
                if spec["replace"] != "always":
                    _check_replace(drv, container, spec)
                return self._send(drv, container, spec, extra, dict(headers), options)
            except (Cancelled, Kept):
                raise
            except Exception as exc:  # noqa: BLE001 - classified: retried or named
                error = _classify(exc, spec["key"])
                if isinstance(error, Transient) and attempts.retry(error):
                    continue
                if isinstance(error, Transient):
                    raise FetchError("%s (gave up after %d attempts)" % (error, attempts.made)) from None
                raise error from None

    def _arguments(self, drv, spec):
        """libcloud's ``extra``, headers and keyword options for the object's upload."""
        pairs = tuple(tuple(pair) for pair in spec["meta"])
        extra, headers = metadata.upload_arguments(pairs)
        if "content_type" not in extra:  # a backup that kept none: from the key, as libcloud guesses
            extra["content_type"] = drv._determine_content_type(None, spec["key"])  # not the spool file's name
        tags = metadata.tags_of(pairs)
        storage_class = metadata.storage_class_of(pairs)
        options = {}
        if driver_mod.is_s3_family(drv):
            if tags:
                headers["x-amz-tagging"] = metadata.tags_header(tags)
            if storage_class and spec.get("keep_class"):
                # libcloud sets the header itself (STANDARD unless told), from the classes it knows
                try:
                    drv._to_storage_class_headers(storage_class.lower())
                    options["ex_storage_class"] = storage_class.lower()
                except ValueError:
                    self._note("storage class %s is not restored: libcloud knows no such class; the objects "
                               "take the bucket's default" % storage_class)
        else:
            if tags:
                self._note("object tags are not restored: the %s driver has none" % self.config["provider"])
            if _is_azure(drv):
                if headers.pop("Expires", None) is not None:
                    self._note("Expires headers are not restored: Azure Blobs has none")
                headers = {AZURE_HEADERS.get(name, name): value for name, value in headers.items()}
        return extra, headers, options

    def _send(self, drv, container, spec, extra, headers, options):
        path, size = spec["path"], spec["size"]
        s3 = driver_mod.is_s3_family(drv)
        if s3 and size > MULTIPART_THRESHOLD:
            parts = []  # the MD5 of each part, as _chunks reads them
            obj = drv.upload_object_via_stream(self._chunks(path, parts), container, spec["key"], extra=extra,
                                               headers=headers, **options)
            expected = "%s-%d" % (hashlib.md5(b"".join(parts)).hexdigest(), len(parts))
            got = (obj.hash or "").strip('"')
            if "-" in got and got != expected:
                raise _HashMismatch("the store's ETag %s is not the %s its parts make" % (got, expected))
            return obj
        if self.cancelled.is_set():
            raise Cancelled()
        if s3:
            headers["Content-Length"] = str(size)  # http.client would send a file chunked (radosgw: 411)
        return drv.upload_object(path, container, spec["key"], extra=extra, headers=headers, verify_hash=True,
                                 **options)

    def _chunks(self, path, parts):
        """The spooled bytes for libcloud's multipart upload; ``parts`` gets the MD5 of each of its
        PART_SIZE parts (the store's ETag is made of them)."""
        digest, filled = hashlib.md5(), 0
        with open(path, "rb") as source:
            while True:
                if self.cancelled.is_set():
                    raise Cancelled()
                chunk = source.read(min(1024 * 1024, PART_SIZE - filled))
                if not chunk:
                    break
                digest.update(chunk)
                filled += len(chunk)
                if filled == PART_SIZE:
                    parts.append(digest.digest())
                    digest, filled = hashlib.md5(), 0
                yield chunk
        if filled:
            parts.append(digest.digest())

    def _bucket(self, drv, name):
        """The target bucket, created if it does not exist."""
        with self.lock:
            container = self.buckets.get(name)
        if container is not None:
            return container
        from libcloud.storage.types import ContainerAlreadyExistsError, ContainerDoesNotExistError

        try:
            container = drv.get_container(name)
        except ContainerDoesNotExistError:
            try:
                container = drv.create_container(name)
                self._note("bucket %r did not exist and was created" % name)
            except ContainerAlreadyExistsError:
                container = drv.get_container(name)
            except Exception as exc:  # noqa: BLE001 - named for the object
                raise _named(exc, name, "bucket %r does not exist and could not be created" % name) from None
        except Exception as exc:  # noqa: BLE001
            raise _named(exc, name, "bucket %r cannot be reached" % name) from None
        with self.lock:
            self.buckets[name] = container
        return container


class _HashMismatch(Exception):
    """The store's checksum of the uploaded bytes is not ours: sent again."""


def _classify(exc, key):
    if isinstance(exc, _HashMismatch) or type(exc).__name__ == "ObjectHashMismatchError":
        return Transient("the store's checksum does not match the bytes sent: %s" % exc)
    return translate(exc, key)


def _named(exc, what, text):
    """``exc`` as a Transient (the upload is tried again) or a FetchError, its text after ``text``."""
    error = translate(exc, what)
    return (Transient if isinstance(error, Transient) else FetchError)("%s: %s" % (text, error))


def _is_azure(drv):
    return type(drv).__name__.startswith("Azure")


def _check_replace(drv, container, spec):
    """Raise Kept when Bareos's replace setting keeps the object that exists under the key."""
    from libcloud.storage.types import ObjectDoesNotExistError

    try:
        existing = drv.get_object(container.name, spec["key"])
    except ObjectDoesNotExistError:
        return
    except Exception as exc:  # noqa: BLE001
        raise _named(exc, spec["key"], "whether it exists could not be found out") from None
    replace = spec["replace"]
    if replace == "never":
        raise Kept("it exists (replace=never)")
    when = timeutil.to_epoch(existing.extra.get("last_modified"))
    if when is None:
        return
    if replace == "ifnewer" and not spec["mtime"] > when:
        raise Kept("the bucket's copy is not older than the backup's (replace=ifnewer)")
    if replace == "ifolder" and not spec["mtime"] < when:
        raise Kept("the bucket's copy is not newer than the backup's (replace=ifolder)")


def serve(conn, drv, config, send, retry_policy):
    """The helper's loop (worker.uploader_main)."""
    Uploader(conn, config, send, retry_policy).run(drv)


PROBE_KEY = ".bareos-libcloud-restore-check"


def probe_write(drv, bucket):
    """Whether these credentials may write objects into ``bucket``, leaving no object behind.

    S3 family: a multipart upload is started and aborted (PutObject permission, no object).
    Azure: one block is put and never committed (no blob; Azure drops it within a week).
    Others: an empty object is uploaded under PROBE_KEY and deleted again.
    Returns the way it was found out; raises FetchError (the store's answer) when it may not."""
    from libcloud.storage.base import Container

    container = Container(name=bucket, extra={}, driver=drv)
    path = drv._get_object_path(container, PROBE_KEY) if hasattr(drv, "_get_object_path") else None
    try:
        if driver_mod.is_s3_family(drv):
            return _probe_multipart(drv, path)
        if _is_azure(drv):
            drv.connection.request(path, params={"comp": "block", "blockid": "YmFyZW9z"}, method="PUT",
                                   data=b"x", headers={"Content-Length": "1"})
            return "a block was put and not committed (no blob)"
        obj = drv.upload_object_via_stream(iter([b""]), container, PROBE_KEY)
        drv.delete_object(obj)
        return "an empty object %r was uploaded and deleted" % PROBE_KEY
    except FetchError:
        raise
    except Exception as exc:  # noqa: BLE001 - the store's answer, named
        raise FetchError(str(translate(exc, bucket))) from None


def _probe_multipart(drv, path):
    from xml.etree import ElementTree

    started = drv.connection.request(path, params={"uploads": ""}, method="POST")
    body = started.body if isinstance(started.body, (bytes, str)) else ""
    upload_id = None
    for element in ElementTree.fromstring(body).iter():
        if element.tag.rsplit("}", 1)[-1] == "UploadId":
            upload_id = element.text
    if not upload_id:
        raise FetchError("the store started no multipart upload (no UploadId in its answer)")
    drv.connection.request(path, params={"uploadId": upload_id}, method="DELETE")
    return "a multipart upload was started and aborted (no object)"
