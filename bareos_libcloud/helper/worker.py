"""Entry points of the helper processes (forked by multiprocessing's fork server, job/helpers.py).

The job starts them through bareos_libcloud.protocol (lister_main, fetcher_main, signer_main
there import this module in the helper); protocol.py describes the messages each one sends and
takes.  A helper never touches ``bareosfd``; it reports and the job thread writes the job log.
"""

import os
import sys
import threading

from ..retry import RetryPolicy
from . import driver as driver_mod
from . import fetch, listing

def _identify(name):
    """Name this process for ps and top (``libcloud-fetch`` ...), and have Linux end it if its
    parent, the fork server, is killed before it (helpers.stop_servers kills it at the end of the job)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        libc.prctl(15, ctypes.c_char_p(name.encode()[:15]))  # PR_SET_NAME
    except Exception:  # noqa: BLE001 - best effort only
        pass


def _retry_policy(conn, config):
    """The helper's retry policy; each retry and resume goes to the job as ("retried"|"resumed",
    text), whatever ``debug``: the job counts them for its summary (and traces the text)."""

    def count(kind, text):
        conn.send((kind, _scrub(text, config)))

    return RetryPolicy(config.get("retries", 5), config.get("retry_max_wait", 30.0), count=count)


def _scrub(text, config):
    for secret in config.get("secrets", ()):
        text = text.replace(secret, "***")
    return text


def _setup(conn, config):
    try:
        return driver_mod.make_driver(config["provider"], config["driver_kwargs"], config["timeout"],
                                      config.get("ca_file"))
    except driver_mod.DriverSetupError as exc:
        conn.send(("fatal", _scrub(str(exc), config)))
    except Exception as exc:  # noqa: BLE001 - reported, never re-raised into a traceback
        text = "cannot create the libcloud driver: %s: %s" % (type(exc).__name__, exc)
        conn.send(("fatal", _scrub(text, config)))
    return None


def lister_main(conn, config):
    """List the selected buckets and send their objects in listing order."""

    def list_all(drv):
        for message in listing.list_all(drv, config, _retry_policy(conn, config)):
            conn.send(message)

    _serve(conn, config, "the listing", "libcloud-list", list_all)


def _report_crash(conn, config, what, exc):
    try:
        conn.send(("fatal", _scrub("%s failed: %s: %s" % (what, type(exc).__name__, exc), config)))
    except (OSError, ValueError):
        pass


def _serve(conn, config, what, name, body):
    """Run ``body(drv)`` with a driver; a crash becomes one "fatal" message, never a traceback."""
    _identify(name)
    try:
        drv = _setup(conn, config)
        if drv is not None:
            body(drv)
    except (BrokenPipeError, EOFError, OSError, KeyboardInterrupt):
        pass  # the job went away or stopped us
    except Exception as exc:  # noqa: BLE001 - no traceback on the daemon's stderr
        _report_crash(conn, config, what, exc)
    finally:
        conn.close()


def _requests(conn, *kinds):
    """The job's messages of these ``kinds``, until it sends anything else (a "stop")."""
    while True:
        message = conn.recv()
        if message[0] not in kinds:
            return
        yield message


def signer_main(conn, config):
    """Sign the GETs that the job sends itself (direct streams of large objects, see direct.py)."""

    def sign(drv):
        if not driver_mod.uses_lean_transport(drv):
            conn.send(("unsupported", "the %s driver is not sent through the lean transport" % config["provider"]))
            return
        from .transport import signed_get

        conn.send(("ready",))
        for message in _requests(conn, "sign", "tags"):
            kind, ident, bucket, key = message[:4]
            try:
                region = message[-1]
                if region:
                    driver_mod.follow_region(drv, bucket, region)
                there = driver_mod.driver_for_bucket(drv, bucket)
                if kind == "tags":
                    conn.send(("tags", ident, fetch.object_tags(there, bucket, key)))
                    continue
                start, etag, with_key = message[4:7]
                path = there._get_object_path(fetch._container(there, bucket), key)
                customer_key = fetch.customer_key_of(there) if with_key else None
                conn.send(("signed", ident, signed_get(there, path, fetch.get_headers(start, etag, customer_key))))
            except fetch.FetchError as exc:
                conn.send(("error", ident, _scrub(str(exc), config)))
            except Exception as exc:  # noqa: BLE001 - reported to the job, never a traceback
                text = "cannot sign the request: %s: %s" % (type(exc).__name__, exc)
                conn.send(("error", ident, _scrub(text, config)))

    _serve(conn, config, "the signing process", "libcloud-sign", sign)


def uploader_main(conn, config):
    """Upload the objects of a restore into a bucket (uploader.py)."""
    from . import uploader

    lock = threading.Lock()

    def send(message):
        with lock:
            conn.send(message)

    def count(kind, text):
        send((kind, _scrub(text, config)))

    retry = RetryPolicy(config.get("retries", 5), config.get("retry_max_wait", 30.0), count=count)
    _serve(conn, config, "the upload process", "libcloud-upload",
           lambda drv: (send(("ready",)), uploader.serve(conn, drv, config, send, retry)))


def fetcher_main(conn, config):
    """Download the objects the job asks for, many at a time (fetcher.py)."""
    from . import fetcher

    _serve(conn, config, "a fetch process", "libcloud-fetch", lambda drv: fetcher.serve(conn, drv, config))
