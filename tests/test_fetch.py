"""fetch.translate: how a failed read is classified (retried, object gone, or reported)."""

import http.client
import socket

import pytest
from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
from libcloud.common.types import InvalidCredsError, LibcloudError
from libcloud.storage.types import ObjectDoesNotExistError

from bareos_libcloud.helper import fetch
from bareos_libcloud.retry import Transient


@pytest.mark.parametrize("exc, kind, text", [
    (ObjectDoesNotExistError("gone", None, "k"), fetch.ObjectVanished, ""),
    (RateLimitReachedError(), Transient, "HTTP 429"),
    (BaseHTTPError(503, "Slow Down"), Transient, "HTTP 503: Slow Down"),
    (BaseHTTPError(400, "Bad Request"), fetch.FetchError, "HTTP 400: Bad Request"),
    (InvalidCredsError(), fetch.FetchError, "access denied"),
    (LibcloudError("Unexpected status code: 500"), Transient, "HTTP 500"),
    (LibcloudError("Unexpected status code: 404"), fetch.FetchError, "HTTP 404"),
    (LibcloudError("something else"), fetch.FetchError, "something else"),
    (ConnectionResetError("reset by peer"), Transient, "reset by peer"),
    (socket.timeout("timed out"), Transient, "timed out"),
    (http.client.IncompleteRead(b"", 10), Transient, "IncompleteRead"),
    (ValueError("odd"), fetch.FetchError, "ValueError: odd"),
])
def test_errors_are_classified(exc, kind, text):
    got = fetch.translate(exc, "k")
    assert type(got) is kind
    assert text in str(got)


def test_a_key_with_dot_segments_says_why_access_was_denied():
    got = fetch.translate(InvalidCredsError(), "a/../b")
    assert "signature_version=4" in str(got)


def _stream_through_a_prefetcher(moto, bucket, key, listed_size, monkeypatch, etag=None, texts=None):
    """fetcher._try_send_object in this process, on the generic (non-S3) branch of fetch, against
    the real server: the messages a fetch helper sends for a stream (granted a credit for each
    chunk read, as the job does), and the bytes it sent.
    ``etag``: the version asked for (as for an object read on demand); ``texts`` gets the
    messages' texts."""
    import os
    import threading
    from multiprocessing.connection import Pipe

    # imported here: the emulator's jobs purge and re-import the package's modules
    from bareos_libcloud.helper import driver, fetcher
    from bareos_libcloud.helper import fetch as current_fetch
    from bareos_libcloud.retry import RetryPolicy

    # as for Azure or Swift: requests, not the lean transport, and libcloud's own download
    monkeypatch.setattr(current_fetch, "is_s3_family", lambda drv: False)
    monkeypatch.setattr(driver, "is_s3_family", lambda drv: False)
    before = socket.getdefaulttimeout()
    drv = driver.make_driver(moto.provider, dict(key=moto.key, secret=moto.secret, host=moto.host,
                                                 port=moto.port, secure=False, region=moto.region), 30)
    ours, theirs = Pipe(duplex=True)
    request = ("get", 7, bucket, key, {"size": listed_size, "mtime": None, "etag": etag}, 64 * 1024, 0, etag)
    credits = fetcher.Credits()
    channel = fetcher.Channel(fetcher.Outbox(theirs), credits, 7)
    sender = threading.Thread(target=fetcher._try_send_object,
                              args=(channel, drv, RetryPolicy(1, 0.1), request, True))
    sender.start()  # the pipe holds less than the object: read while it sends
    messages, sent = [], 0
    while not messages or messages[-1] not in ("end", "error"):
        message = ours.recv()
        messages.append(message[0])
        if texts is not None and message[0] in ("error", "retried", "resumed"):
            texts.append(message[-1])
        if message[0] == "data":
            left = message[-1]
            while left:
                left -= len(os.read(ours.fileno(), left))
            sent += message[-1]
            credits.grant(7, 1)
    sender.join()
    socket.setdefaulttimeout(before)  # make_driver sets it for the helper process it runs in
    return messages, sent


def test_a_stream_shorter_than_listed_is_an_error_and_short(moto, bucket_name, monkeypatch):
    """Outside the S3 family a stream's size is the listed one (the GET does not say): an object
    that shrank after the listing is an error, and its last piece is withheld, so the copy is
    short of the cataloged size and a restore refuses it."""
    import os

    data = os.urandom(700 * 1024)
    moto.make_bucket(bucket_name, {"k": data})
    messages, sent = _stream_through_a_prefetcher(moto, bucket_name, "k", len(data) + 100, monkeypatch)
    assert messages[0] == "begin" and messages[-1] == "error" and "end" not in messages
    assert sent < len(data)


def test_a_stream_longer_than_listed_is_kept(moto, bucket_name, monkeypatch):
    """A Swift manifest lists 0 bytes and downloads its segments: more than listed is fine."""
    import os

    data = os.urandom(700 * 1024)
    moto.make_bucket(bucket_name, {"k": data})
    messages, sent = _stream_through_a_prefetcher(moto, bucket_name, "k", 100, monkeypatch)
    assert messages[0] == "begin" and messages[-1] == "end" and "error" not in messages
    assert sent == len(data)


def test_a_generic_read_of_the_listed_version_confirms_it(moto, bucket_name, monkeypatch):
    """Outside the S3 family a GET cannot carry If-Match: an object read on demand (its listed
    attributes went to Bareos) is confirmed at the end to still have the listed ETag, or it is
    an error naming why."""
    import hashlib
    import os

    old, new = os.urandom(700 * 1024), os.urandom(700 * 1024)
    moto.make_bucket(bucket_name, {"k": new})
    texts = []
    messages, _ = _stream_through_a_prefetcher(moto, bucket_name, "k", len(old), monkeypatch,
                                               etag=hashlib.md5(old).hexdigest(), texts=texts)
    assert messages[-1] == "error" and "changed after its attributes were sent" in texts[-1], texts
    messages, sent = _stream_through_a_prefetcher(moto, bucket_name, "k", len(new), monkeypatch,
                                                  etag=hashlib.md5(new).hexdigest())
    assert messages[-1] == "end" and sent == len(new)


@pytest.mark.parametrize("size, etag, error", [
    (100, "e1", None),
    (99, "e1", "100 bytes, 99 listed"),
    (100, "e0", "ETag e1, e0 listed"),
    (100, None, None),  # no listed ETag: the size is what can be compared
])
def test_an_object_read_on_demand_must_match_its_listed_attributes(size, etag, error):
    from bareos_libcloud.job import prefetch

    download = prefetch.Download(None, 1, "b", "k", {})
    download.state, download.size, download.etag = prefetch.COMPLETE, 100, "e1"
    assert prefetch.changed_since_listed(download, size, etag) is (error is None)
    if error:
        assert download.state == prefetch.FAILED
        assert "changed after its attributes were sent to Bareos (%s)" % error in download.error


@pytest.mark.parametrize("status, document, text", [
    (403, "<Error><Code>InvalidObjectState</Code><Message>The operation is not valid for the object's storage "
          "class</Message><StorageClass>GLACIER</StorageClass></Error>",
     "archived in storage class GLACIER, not readable without a restore request"),
    (403, "<Error><Code>InvalidObjectState</Code><StorageClass>INTELLIGENT_TIERING</StorageClass>"
          "<AccessTier>ARCHIVE_ACCESS</AccessTier></Error>",
     "archived in storage class INTELLIGENT_TIERING (ARCHIVE_ACCESS), not readable"),
    (400, "<Error><Code>InvalidRequest</Code><Message>The object was stored using a form of Server Side "
          "Encryption. The correct parameters must be provided to retrieve the object.</Message></Error>",
     "encrypted with a customer key (SSE-C)"),
    (400, "<Error><Code>InvalidArgument</Code><Message>Requests specifying Server Side Encryption with "
          "Customer provided keys must provide a valid encryption algorithm.</Message></Error>",
     "encrypted with a customer key (SSE-C)"),
    (403, b"<Error><Code>AccessDenied</Code></Error>", "access denied by the object store"),
    (400, "<Error><Code>BadRequest</Code></Error>", "HTTP 400: BadRequest"),
])
def test_a_refused_get_names_its_reason(status, document, text):
    assert text in str(fetch.error_of(status, document, "k"))
    if status == 403:  # libcloud raises these with the error document as the value
        assert text in str(fetch.translate(InvalidCredsError(document), "k"))
