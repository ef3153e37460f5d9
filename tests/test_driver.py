"""driver.make_driver: which options each libcloud driver class takes, and the driver it builds.

make_driver runs in the job's helper processes; here it runs in the test process, against moto
where a request is made.  The end-to-end view of the same checks is tests/test_providers.py.
"""

import pytest

from bareos_libcloud.helper.driver import DriverSetupError, _driver_class, driver_parameters, make_driver
from bareos_libcloud.options import OptionSet


def kwargs_of(text):
    """The driver options of a plugin string, as the job hands them to a helper."""
    optset = OptionSet()
    optset.add_string(text)
    opts = optset.build()
    return opts.provider, opts.driver_kwargs


def server_options(server, provider, key_prefix="", region=False):
    text = "provider=%s:key=%s%s:secret=%s:host=%s:port=%d:secure=false:" % (
        provider, key_prefix, server.key, server.secret, server.host, server.port)
    return text + ("region=%s:" % server.region if region else "")


def params(provider):
    return driver_parameters(_driver_class(provider)[1])


def test_driver_parameters_are_read_from_the_classes():
    assert params("MINIO") == {"key", "secret", "secure", "host", "port"}  # no **kwargs: nothing else
    # S3_RGW passes **kwargs up to BaseDriver, which reads timeout, proxy_url... from them, and
    # reads signature_version itself; it takes no token (AWSDriver is not among its bases).
    assert {"signature_version", "region", "timeout", "proxy_url", "retry_delay", "backoff"} <= params("S3_RGW")
    assert "token" not in params("S3_RGW")
    assert {"token", "region", "timeout"} <= params("S3") and "signature_version" not in params("S3")
    assert {"project", "host", "port"} <= params("GOOGLE_STORAGE")
    assert {"tenant_id", "auth_type", "identity", "timeout"} <= params("AZURE_BLOBS")
    # The OpenStack mixin comes after BaseDriver in the MRO and gets the same **kwargs.
    assert {"ex_force_auth_url", "ex_force_auth_version", "ex_tenant_name", "region"} <= params("OPENSTACK_SWIFT")


def test_minio_gets_the_plugins_timeout_on_its_connection(moto, bucket_name):
    """MinIO's driver has no timeout parameter (make_driver used to pass one: TypeError)."""
    moto.make_bucket(bucket_name, {"k": b"v"})
    provider, kwargs = kwargs_of(server_options(moto, "MINIO"))
    drv = make_driver(provider, kwargs, 17)
    assert drv.connection.timeout == 17 and drv.connection.connection.timeout == 17
    assert bucket_name in [c.name for c in drv.list_containers()]


def test_google_storage_with_an_hmac_key_talks_to_the_host_given(moto, bucket_name):
    """libcloud hands host and port to GoogleStorageConnection by position, where it takes
    auth_type and credential_file: the host became the auth type, and every request failed."""
    moto.make_bucket(bucket_name, {"k": b"v"})
    provider, kwargs = kwargs_of(server_options(moto, "GOOGLE_STORAGE", key_prefix="GOOG1"))
    drv = make_driver(provider, kwargs, 17)
    assert drv.connection.auth_type == "GCS_S3"
    assert (drv.connection.host, drv.connection.port) == (moto.host, moto.port)
    response = drv.connection.request("/")
    assert response.status == 200 and bucket_name in response.body


def test_a_lower_case_provider_builds_its_driver(moto):
    provider, kwargs = kwargs_of(server_options(moto, "s3_rgw", region=True))
    assert type(make_driver(provider, kwargs, 10)).__name__ == "S3RGWStorageDriver"
    minio = make_driver("minio", kwargs_of(server_options(moto, "MINIO"))[1], 10)
    assert type(minio).__name__ == "MinIOStorageDriver"


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("bucket_include=x:", "unknown option bucket_include (did you mean buckets_include?)"),
        ("signature_version=2:", "unknown option signature_version (neither the plugin's nor the libcloud driver for S3, which takes: "),
        ("regoin=us-east-1:", "unknown option regoin (did you mean region?)"),
    ],
)
def test_an_option_the_driver_does_not_take_is_refused(moto, extra, expected):
    provider, kwargs = kwargs_of(server_options(moto, "S3") + extra)
    with pytest.raises(DriverSetupError) as err:
        make_driver(provider, kwargs, 10)
    assert str(err.value).startswith(expected)
    assert moto.secret not in str(err.value) and moto.key not in str(err.value)


def test_a_missing_secret_is_named():
    provider, kwargs = kwargs_of("provider=S3_RGW:key=AKEYVALUE:host=127.0.0.1:port=9:secure=false:")
    with pytest.raises(DriverSetupError) as err:
        make_driver(provider, kwargs, 10)
    assert str(err.value) == "mandatory option secret is missing (in the plugin string or a credentials_file)"


def test_an_unknown_provider_names_the_closest_one():
    with pytest.raises(DriverSetupError) as err:
        make_driver("S3RGW", kwargs_of("provider=S3:key=K:secret=S:")[1], 10)
    assert "option provider='S3RGW' is not a libcloud storage provider (did you mean S3_RGW?" in str(err.value)
