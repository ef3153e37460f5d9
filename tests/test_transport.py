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


# -- signing for the fetch helpers' curl path -----------------------------------------------

def _s3_driver(s3, **extra):
    kwargs = dict(key=s3.key, secret=s3.secret, host=s3.host, port=s3.port, secure=False, region=s3.region)
    kwargs.update(extra)
    return driver_mod.make_driver(s3.provider, kwargs, 10)


def test_the_quick_signer_signs_as_libcloud_does(s3, bucket_name):
    """QuickSigner (libcloud's hooks without its request machinery) gives the request signed_get
    records, and that request reads the object."""
    import http.client

    from bareos_libcloud.helper.transport import QuickSigner, signed_get

    s3.make_bucket(bucket_name, {"a b/ü+%": b"quick"})
    drv = _s3_driver(s3)
    signer = QuickSigner(drv)
    path = drv._get_object_path(fetch._container(drv, bucket_name), "a b/ü+%")
    signed = signer.sign(path, {"If-Match": '"x"'})
    assert signer.agrees
    for _ in range(QuickSigner.TRIES):  # the two may fall on either side of a second
        if signer.sign(path, {}) == signed_get(drv, path, {}):
            break
    else:
        pytest.fail("QuickSigner and signed_get sign differently")
    assert signed["headers"]["If-Match"] == '"x"'
    request = signer.sign(path, {})
    conn = http.client.HTTPConnection(request["host"], request["port"])
    conn.request("GET", request["target"], headers=request["headers"])
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, b"quick")


def test_the_quick_signer_steps_aside_where_libcloud_signs_otherwise(s3):
    """A driver whose request adds what its hooks do not (here a header): every request is signed
    through signed_get, as libcloud sends it."""
    from bareos_libcloud.helper.transport import QuickSigner

    drv = _s3_driver(s3)
    connection = drv.connection
    plain = connection.request

    def with_extra(action, *args, **kwargs):
        kwargs["headers"] = dict(kwargs.get("headers") or {}, **{"X-Extra": "1"})
        return plain(action, *args, **kwargs)

    connection.request = with_extra
    signer = QuickSigner(drv)
    request = signer.sign("/b/k", {})
    assert not signer.agrees and request["headers"]["X-Extra"] == "1"


def test_a_cached_signing_key_signs_the_same():
    """cache_signing_key: a SigV4 signer derives its key once a day, with the same signatures."""
    import datetime

    from bareos_libcloud.helper.transport import cache_signing_key

    drv = driver_mod.make_driver("S3", dict(key="AKIAEXAMPLE", secret="s" * 40, region="eu-west-1"), 10)
    signer = drv.connection.signer
    day = datetime.datetime(2026, 12, 7, 1, 2, 3)
    before = signer._get_key_to_sign_with(day)
    cache_signing_key(drv)
    assert signer._get_key_to_sign_with(day) == before
    assert signer._get_key_to_sign_with(day + datetime.timedelta(days=1)) != before
    assert signer._get_key_to_sign_with(day) == before
