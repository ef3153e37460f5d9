"""Entry points of the helper processes (started with multiprocessing's ``spawn``).

Each helper talks to the job over one duplex pipe.  Messages are tuples whose first item names
them.  A helper never touches ``bareosfd``; it reports and the job thread writes the job log.

Lister -> job::

    ("ready", [bucket names])      credentials and buckets checked
    ("warning", text)              e.g. a named bucket that does not exist
    ("entries", bucket, [(key, size, mtime, etag), ...])
    ("bucket_done", bucket)        the bucket was listed completely
    ("bucket_failed", bucket, text)
    ("fatal", text)                nothing more will come
    ("done",)

Job -> prefetcher: ``("get", seq, bucket, key, listed, inline_limit)`` or ``("stop",)``.
Prefetcher -> job::

    ("object", seq, size, mtime, etag, data)   the whole object (it fit in inline_limit)
    ("begin", seq, size, mtime, etag)          a stream follows:
    ("data", seq, chunk) ... ("end", seq)
    ("vanished", seq)                          404 before the first byte
    ("error", seq, text)                       after "begin" too: the stream is broken
"""

import os
import sys

from . import driver as driver_mod
from . import fetch, listing


def _die_with_parent():
    """Ask Linux to end this process when the job's process dies (bareos-fd crash)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort only
        pass


def _setup(conn, config):
    _die_with_parent()
    try:
        return driver_mod.make_driver(config["provider"], config["driver_kwargs"], config["timeout"])
    except driver_mod.DriverSetupError as exc:
        conn.send(("fatal", str(exc)))
    except Exception as exc:  # noqa: BLE001 - reported, never re-raised into a traceback
        conn.send(("fatal", "cannot create the libcloud driver: %s: %s" % (type(exc).__name__, exc)))
    return None


def lister_main(conn, config):
    """List the selected buckets and send their objects in listing order."""
    try:
        drv = _setup(conn, config)
        if drv is None:
            return
        for message in listing.list_all(drv, config):
            conn.send(message)
    except (BrokenPipeError, EOFError, OSError):
        pass  # the job went away
    finally:
        conn.close()


def _send_object(conn, drv, seq, bucket, key, listed, inline_limit):
    parts, held, began = [], 0, False
    stream = None
    try:
        for stream, chunk in fetch.read_object(drv, bucket, key, listed):
            if began:
                if chunk:
                    conn.send(("data", seq, chunk))
                continue
            known = stream.size if stream.size is not None and stream.size >= 0 else None
            if (known is not None and known > inline_limit) or held + len(chunk) > inline_limit:
                conn.send(("begin", seq, known, stream.mtime, stream.etag))
                began = True
                for part in parts:
                    conn.send(("data", seq, part))
                parts = []
                if chunk:
                    conn.send(("data", seq, chunk))
                continue
            if chunk:
                parts.append(chunk)
                held += len(chunk)
    except fetch.ObjectVanished:
        conn.send(("error", seq, "the object vanished while it was read") if began else ("vanished", seq))
        return
    except fetch.FetchError as exc:
        conn.send(("error", seq, str(exc)))
        return
    if began:
        conn.send(("end", seq))
    else:
        conn.send(("object", seq, held, stream.mtime, stream.etag, b"".join(parts)))


def prefetcher_main(conn, config):
    """Download the objects the job asks for, one at a time, in the order asked."""
    try:
        drv = _setup(conn, config)
        if drv is None:
            return
        conn.send(("started", os.getpid()))
        while True:
            message = conn.recv()
            if message[0] != "get":
                break
            _, seq, bucket, key, listed, inline_limit = message
            _send_object(conn, drv, seq, bucket, key, listed, inline_limit)
    except (BrokenPipeError, EOFError, OSError, KeyboardInterrupt):
        pass
    finally:
        conn.close()
