"""fetch.translate: how a failed read is classified (retried, object gone, or reported)."""

import http.client
import socket

import pytest
from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
from libcloud.common.types import InvalidCredsError, LibcloudError
from libcloud.storage.types import ObjectDoesNotExistError

from bareos_libcloud import fetch
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


def _stream_through_a_prefetcher(moto, bucket, key, listed_size, monkeypatch):
    """worker._try_send_object in this process, on the generic (non-S3) branch of fetch, against
    the real server: the messages a prefetcher sends for a stream, and the bytes it sent."""
    import os
    import threading
    from multiprocessing.connection import Pipe

    # imported here: the emulator's jobs purge and re-import the package's modules
    from bareos_libcloud import driver, worker
    from bareos_libcloud import fetch as current_fetch
    from bareos_libcloud.retry import RetryPolicy

    # as for Azure or Swift: requests, not the lean transport, and libcloud's own download
    monkeypatch.setattr(current_fetch, "is_s3_family", lambda drv: False)
    monkeypatch.setattr(driver, "is_s3_family", lambda drv: False)
    before = socket.getdefaulttimeout()
    drv = driver.make_driver(moto.provider, dict(key=moto.key, secret=moto.secret, host=moto.host,
                                                 port=moto.port, secure=False, region=moto.region), 30)
    ours, theirs = Pipe(duplex=True)
    request = ("get", 7, bucket, key, {"size": listed_size, "mtime": None, "etag": None}, 64 * 1024, 0, None)
    sender = threading.Thread(target=worker._try_send_object,
                              args=(theirs, drv, RetryPolicy(1, 0.1), request, True))
    sender.start()  # the pipe holds less than the object: read while it sends
    messages, sent = [], 0
    while not messages or messages[-1] not in ("end", "error"):
        message = ours.recv()
        messages.append(message[0])
        if message[0] == "data":
            left = message[-1]
            while left:
                left -= len(os.read(ours.fileno(), left))
            sent += message[-1]
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
