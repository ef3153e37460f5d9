"""The wire protocol between the job and its helper processes, in one place.

The job (bareos_libcloud.job, inside bareos-fd) starts its helpers through multiprocessing's fork
server (job/helpers.py) with one of the entry points below as target; the helpers' code
(bareos_libcloud.helper) runs only in the helper process.  This module is shared by both sides,
standard library only: the entry points import the helper package when they are called, in the
helper, so the job never imports it, and the fork server takes the target by reference
(``bareos_libcloud.protocol.fetcher_main``).

Each helper talks to the job over one duplex pipe.  Messages are tuples whose first item names
them.  A helper never touches ``bareosfd``; it reports and the job thread writes the job log.

Every request of the job carries an id, and every answer to it names that id: a fetch helper's
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
    ("entries", bucket, [(key, size, mtime, etag, md5, meta), ...])   md5: of the content, where
                                   a generic listing states it; meta: the metadata it states
                                   (metadata.from_listing), None in the S3 family (the GET has it)
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
                                   listing cannot honour, helper/listing.check_support)
    ("done",)

The lister's config (job/backup.BackupSession) adds to the connection's: ``prefix``, ``shard``,
``shard_by``, ``selection`` (selection.spec_of), ``now`` (the job's start, for ages), ``since``
(the change policy's, 0 in a Full), ``accurate``, ``estimate``, ``archived``, ``restore_tier``,
``restore_days`` and ``restore_state`` (``(path, level, job id)`` of the state file, or None).

Job -> fetch helper (helper/fetcher.py), up to its ``slots`` downloads at once:
``("get", seq, bucket, key, listed, inline_limit, start, etag)``; ``start`` > 0 continues a
stream another helper began (``etag``: the version it read); ``etag`` with ``start`` 0 asks for
that version only (``If-Match``: an object whose listed attributes Bareos has already,
answers.ChangedSinceListed if it changed).  ``("more", seq, n)``: the stream may send ``n`` more
chunks (it starts with WINDOW).  ``("cancel", seq)``: Bareos no longer wants it (the job
ignores whatever still comes for it).  ``("stop",)``.
Fetch helper -> job, ``("started", pid)`` once, then for each "get" one of::

    ("object", seq, key, size, mtime, etag, meta, n) + n raw bytes   the whole object (fit in
                                               inline_limit)
    ("begin", seq, key, size, mtime, etag, meta)   a stream follows (size None: the GET did not
    ("data", seq, n) + n raw bytes ...         state it, the listed one holds), one "data"
    ("end", seq, meta)                         per credit; "end": size and MD5 checked, the
                                               last data was withheld until then; ``meta``
                                               with the tags, read after the body
    ("vanished", seq)                          404 before the first byte
    ("error", seq, text)                       after "begin" too: the stream is broken

``meta``: the object's metadata, (name, value) pairs (metadata.py), from the GET's headers.
"object" and "begin" name the key as well: the downloads of one helper share its pipe, and an
answer under another download's ``seq`` must not pass for that download's.
Job -> signer: ``("sign", ident, bucket, key, start, etag, with_key, region)`` (``etag``:
``If-Match``, as for a "get"; ``with_key``: the GET brings the SSE-C customer key; ``region``:
None, or the region the bucket answered that it is in, to sign for from then on); signer -> job:
``("ready",)`` once, or ``("unsupported", why)`` (not an S3-family driver, or a proxy: the job
streams through the fetch helpers instead); then for each request ``("signed", ident, request)``
(helper/transport.signed_get) or ``("error", ident, text)``.  ``("tags", ident, bucket, key,
region)``: the object's tags (a GET said it has some), answered ``("tags", ident, [(key, value)])``
or ``("error", ident, text)``.
Job -> upload helper (helper/uploader.py, a restore into a bucket): ``("put", seq, spec)``,
``spec`` a dict: bucket, key, path (the spooled bytes), size, mtime, meta (metadata.py's pairs),
replace (always, ifnewer, ifolder, never), keep_class; ``("cancel",)``; ``("stop",)``.  Upload
helper -> job: ``("ready",)`` once, then for each "put" ``("stored", seq, key)``, ``("kept", seq,
key, why)`` or ``("error", seq, key, text)``; at any time ``("note", text)`` (once per text).
A crash in any helper: ``("fatal", text)``, then its pipe closes.

A message's raw bytes (``"object"``, ``"data"``) follow it on the pipe as they are, not pickled:
the helper writes them with send_raw, the job reads them with receive_raw.
"""

import mmap
import os

from .answers import CHUNK_SIZE

#: Chunks a stream may send ahead of the job's credits (the job holds at most these, unread).
WINDOW = 2


def lister_main(conn, config):
    """The lister (helper/worker.lister_main)."""
    from .helper import worker

    worker.lister_main(conn, config)


def fetcher_main(conn, config):
    """A fetch helper (helper/worker.fetcher_main)."""
    from .helper import worker

    worker.fetcher_main(conn, config)


def uploader_main(conn, config):
    """The upload helper of a restore into a bucket (helper/worker.uploader_main)."""
    from .helper import worker

    worker.uploader_main(conn, config)


def signer_main(conn, config):
    """The signer (helper/worker.signer_main)."""
    from .helper import worker

    worker.signer_main(conn, config)


def send_raw(fd, data):
    """The helper's side: write ``data`` (the raw bytes that follow a message) to the pipe ``fd``."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def receive_raw(conn, size):
    """The ``size`` raw bytes that follow a header, read straight into one buffer.

    Up to a chunk it is a bytearray that goes to Bareos as it is.  A larger object is sliced
    anyway, so it goes into an anonymous mmap: freed, it returns to the system at once, where
    malloc would keep it (the job's process is bareos-fd, which lives on).
    """
    buffer = bytearray(size) if size <= CHUNK_SIZE else mmap.mmap(-1, size)
    view = memoryview(buffer)
    fd = conn.fileno()
    while view:
        got = os.readv(fd, [view])
        if not got:
            raise EOFError("the fetch process closed its pipe")
        view = view[got:]
    return buffer
