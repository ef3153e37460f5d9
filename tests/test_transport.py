"""The lean transport (bareos_libcloud/helper/transport.py) under libcloud, against moto through the
fault proxy: keep-alive reuse, a connection the server closed while idle, an abandoned body."""

import socket

import pytest

from faultproxy import FaultProxy

from bareos_libcloud.helper import driver as driver_mod
from bareos_libcloud.helper import fetch
from bareos_libcloud.retry import RetryPolicy

OBJECTS = {"one": b"1" * 1000, "two": b"2" * 300000, "three": b""}


@pytest.fixture(autouse=True)
def default_timeout_kept():
    """make_driver sets the process's default socket timeout (right for a helper, not for pytest)."""
    before = socket.getdefaulttimeout()
    yield
    socket.setdefaulttimeout(before)


@pytest.fixture
def proxied(s3, bucket_name):
    s3.make_bucket(bucket_name, OBJECTS)
    with FaultProxy(s3.host, s3.port) as proxy:
        kwargs = dict(key=s3.key, secret=s3.secret, host=proxy.host, port=proxy.port, secure=False,
                      region=s3.region)
        yield driver_mod.make_driver(s3.provider, kwargs, 10), proxy, bucket_name


def is_lean(drv):
    # By name: the emulator imports the plugin's modules afresh for each job, as bareos-fd does.
    transport = type(drv.connection.connection)
    return (transport.__module__, transport.__name__) == ("bareos_libcloud.helper.transport", "LeanConnection")


def read(drv, bucket, key):
    out = bytearray()
    for _, chunk in fetch.read_object(drv, bucket, key, {"size": len(OBJECTS[key])}, RetryPolicy(1, 0.1)):
        out += chunk
    return bytes(out)


def test_s3_drivers_use_it_and_reuse_one_connection(proxied, s3):
    drv, proxy, bucket = proxied
    assert is_lean(drv)
    for key in ("one", "two", "three", "one"):
        assert read(drv, bucket, key) == OBJECTS[key]
    gets = proxy.entries(method="GET")
    assert [e.status for e in gets] == [200, 200, 200, 200]
    if s3.keeps_alive:
        assert len({e.conn for e in gets}) == 1, "keep-alive: one client connection for all four"


def test_a_connection_closed_while_idle_is_opened_again(proxied):
    drv, proxy, bucket = proxied
    assert read(drv, bucket, "one") == OBJECTS["one"]
    proxy.disconnect_all()
    assert read(drv, bucket, "two") == OBJECTS["two"]
    assert [e.status for e in proxy.entries(method="GET")] == [200, 200]


def test_a_body_left_unread_does_not_spoil_the_next_request(proxied):
    drv, proxy, bucket = proxied
    reader = fetch.read_object(drv, bucket, "two", {"size": 300000}, RetryPolicy(1, 0.1))
    next(reader)
    next(reader)  # one chunk of three, then given up
    reader.close()
    assert read(drv, bucket, "one") == OBJECTS["one"]


def test_a_proxy_keeps_requests(moto, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    drv = driver_mod.make_driver(moto.provider, dict(key=moto.key, secret=moto.secret, host=moto.host,
                                                     port=moto.port, secure=False, region=moto.region), 10)
    assert not is_lean(drv)
