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
