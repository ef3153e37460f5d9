"""Entry points of the helper processes (forked by multiprocessing's fork server, helpers.py).

Each helper talks to the job over one duplex pipe.  Messages are tuples whose first item names
them.  A helper never touches ``bareosfd``; it reports and the job thread writes the job log.

Every request of the job carries an id, and every answer to it names that id: a prefetcher's
``seq``, a signer's ``ident``.  The job checks it on each answer; a helper that answers with
another id, or not in time, is killed and never asked again (its download goes to another
helper, a signature is asked of a new signer), so a late answer can never be taken for the
answer to a later request.

Any helper -> job, at any time (not answers, so without an id)::

    ("debug", text)                a trace line (the job writes it only with debug=yes)
    ("retried", text)              a request was sent again (a transient failure: 429, 5xx,
                                   a reset or refused connection, a timeout; or an object read
                                   again from its start)
    ("resumed", text)              a broken transfer continues from the byte reached
                                   "retried" and "resumed" are always sent: the job counts them
                                   for its summary (retry.FaultCounts) and traces the text

Lister -> job (the lister takes no requests; it streams)::

    ("ready", [bucket names])      credentials and buckets checked
    ("warning", text)              e.g. a bucket named in buckets_exclude that does not exist
    ("error", text)                e.g. a bucket named in buckets_include that does not exist
    ("entries", bucket, [(key, size, mtime, etag, md5), ...])   md5: of the content, where a
                                                                 generic listing states it
                                   only objects of the line's selection (prefix, shard and the
                                   selection options, applied here: selection.py) that a GET
                                   can read; archived ones (S3 GLACIER, DEEP_ARCHIVE; Azure
                                   Archive) are counted in the tally instead
    ("restored", bucket, [entry, ...])   as "entries", for objects with a restore request in
                                   the state file (archive.py) that a GET can read now: the job
                                   saves them whatever their times say, and settles the request
    ("tally", bucket, {...})       after a bucket's objects (before "bucket_failed" too, when
                                   some were listed): what was not sent.  Counts "left_out"
                                   (by the selection), "unchanged" (archived, not changed since
                                   the since time), "archived" (archived=skip: not saved),
                                   "requested", "pending", "restore_failed" (archived=request),
                                   "vanished"; "classes" {storage class: archived objects};
                                   "names" [(key, class, state)] and "errors" [(key, reason)]:
                                   the first NAMES_SHOWN of them; "kept": the sorted 64-bit
                                   name hashes (archive.pack) of the archived objects not sent,
                                   in accurate mode (check_file must not record them deleted);
                                   "gone": backup names of recorded restore requests whose
                                   objects a complete listing no longer shows
    ("bucket_done", bucket)        the bucket was listed completely
    ("bucket_failed", bucket, text)
    ("fatal", text)                nothing more will come (also an option the provider's
                                   listing cannot honour, listing.check_support)
    ("done",)

The lister's config (backup.BackupSession) adds to the connection's: ``prefix``, ``shard``,
``shard_by``, ``selection`` (selection.spec_of), ``now`` (the job's start, for ages), ``since``
(the change policy's, 0 in a Full), ``accurate``, ``estimate``, ``archived``, ``restore_tier``,
``restore_days`` and ``restore_state`` (``(path, level, job id)`` of the state file, or None).

Job -> fetch helper (fetcher.py), up to its ``slots`` downloads at once:
``("get", seq, bucket, key, listed, inline_limit, start, etag)``; ``start`` > 0 continues a
stream another helper began (``etag``: the version it read); ``etag`` with ``start`` 0 asks for
that version only (``If-Match``: an object whose listed attributes Bareos has already,
fetch.ChangedSinceListed if it changed).  ``("more", seq, n)``: the stream may send ``n`` more
chunks (it starts with fetcher.WINDOW).  ``("cancel", seq)``: Bareos no longer wants it (the job
ignores whatever still comes for it).  ``("stop",)``.
Fetch helper -> job, ``("started", pid)`` once, then for each "get" one of::

    ("object", seq, key, size, mtime, etag, n) + n raw bytes   the whole object (fit in inline_limit)
    ("begin", seq, key, size, mtime, etag)     a stream follows (size None: the GET did not
    ("data", seq, n) + n raw bytes ...         state it, the listed one holds), one "data"
    ("end", seq)                               per credit; "end": size and MD5 checked, the
                                               last data was withheld until then
    ("vanished", seq)                          404 before the first byte
    ("error", seq, text)                       after "begin" too: the stream is broken

"object" and "begin" name the key as well: the downloads of one helper share its pipe, and an
answer under another download's ``seq`` must not pass for that download's.
Job -> signer: ``("sign", ident, bucket, key, start, etag, with_key, region)`` (``etag``:
``If-Match``, as for a "get"; ``with_key``: the GET brings the SSE-C customer key; ``region``:
None, or the region the bucket answered that it is in, to sign for from then on); signer -> job:
``("ready",)`` once, or ``("unsupported", why)`` (not an S3-family driver, or a proxy: the job
streams through the prefetchers instead); then for each request ``("signed", ident, request)``
(transport.signed_get) or ``("error", ident, text)``.
A crash in any helper: ``("fatal", text)``, then its pipe closes.
"""

import os
import sys

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


def _requests(conn, kind):
    """The job's messages of ``kind``, until it sends anything else (a "stop")."""
    while True:
        message = conn.recv()
        if message[0] != kind:
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
        for _, ident, bucket, key, start, etag, with_key, region in _requests(conn, "sign"):
            try:
                if region:
                    driver_mod.follow_region(drv, bucket, region)
                there = driver_mod.driver_for_bucket(drv, bucket)
                path = there._get_object_path(fetch._container(there, bucket), key)
                customer_key = fetch.customer_key_of(there) if with_key else None
                conn.send(("signed", ident, signed_get(there, path, fetch.get_headers(start, etag, customer_key))))
            except fetch.FetchError as exc:
                conn.send(("error", ident, _scrub(str(exc), config)))
            except Exception as exc:  # noqa: BLE001 - reported to the job, never a traceback
                text = "cannot sign the request: %s: %s" % (type(exc).__name__, exc)
                conn.send(("error", ident, _scrub(text, config)))

    _serve(conn, config, "the signing process", "libcloud-sign", sign)


def fetcher_main(conn, config):
    """Download the objects the job asks for, many at a time (fetcher.py)."""
    from . import fetcher

    _serve(conn, config, "a fetch process", "libcloud-fetch", lambda drv: fetcher.serve(conn, drv, config))
