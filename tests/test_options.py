"""Option parsing: the plugin string, the credentials file, and clear errors."""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bareos_libcloud.options import OptionError, OptionSet, split_plugin_string

BASE = "provider=S3_RGW:key=AKEY:secret=SEKRET:host=127.0.0.1:port=9000:secure=false:"


def build(text, need_remote=True):
    optset = OptionSet()
    optset.add_string(text)
    return optset.build(need_remote=need_remote)


def test_defaults_and_driver_options():
    opts = build(BASE + "region=default:")
    assert opts.provider == "S3_RGW"
    assert opts.nb_prefetcher == 24 and opts.queue_size == 1000 and opts.prefetch_size == 10485760
    assert opts.driver_kwargs == {
        "key": "AKEY", "secret": "SEKRET", "host": "127.0.0.1", "port": 9000, "secure": False, "region": "default",
    }
    assert opts.buckets_include is None and opts.buckets_exclude == [] and opts.prefix is None
    assert not opts.debug


def test_plugin_options_are_parsed():
    opts = build(BASE + "buckets_include=a,b:buckets_exclude=c:prefix=logs/:nb_prefetcher=4:"
                 "queue_size=10:prefetch_size=1M:debug=yes:")
    assert opts.buckets_include == ["a", "b"] and opts.buckets_exclude == ["c"]
    assert opts.prefix == "logs/" and opts.nb_prefetcher == 4 and opts.queue_size == 10
    assert opts.prefetch_size == 1 << 20 and opts.debug


def test_escaped_colon_and_backslash():
    pairs = split_plugin_string(r"secret=a\:b\\c:prefix=x\:y:")
    assert pairs == [("secret", "a:b\\c"), ("prefix", "x:y")]


def test_first_value_wins_and_second_string_adds():
    optset = OptionSet()
    optset.add_string(BASE)
    optset.add_string("nb_prefetcher=3:provider=S3:")
    opts = optset.build()
    assert opts.provider == "S3_RGW" and opts.nb_prefetcher == 3
    assert any("provider given twice" in w for w in opts.warnings)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("key=a:secret=b:", "provider is missing"),
        ("provider=S3:secret=b:", "key is missing"),
        (BASE + "nb_prefetcher=-1:", "nb_prefetcher=-1 is too small"),
        (BASE + "nb_prefetcher=many:", "nb_prefetcher='many' is not a whole number"),
        (BASE + "prefetch_size=10X:", "prefetch_size='10X' is not a size"),
        (BASE + "queue_size=0:", "queue_size=0 is too small"),
        (BASE + "debug=perhaps:", "debug='perhaps' is not a boolean"),
        (BASE + "prefix=:", "option prefix is empty"),
        (BASE + "buckets_include=a,,b:", "empty name"),
        ("provider=S3:key=a:port=http:", "port='http' is not a whole number"),
        ("provider=S3:key=a:port=70000:", "port=70000 is too large"),
        (BASE + "credentials_file=/nonexistent/creds:", "credentials_file '/nonexistent/creds' cannot be read"),
        (BASE + "python=python3:", "must be an absolute path"),
        (BASE + "ca_file=ca.pem:", "ca_file='ca.pem' must be an absolute path"),
        (BASE + "ca_file=/nonexistent/ca.pem:", "ca_file='/nonexistent/ca.pem' cannot be read"),
    ],
)
def test_bad_options_name_the_problem(text, needle):
    with pytest.raises(OptionError) as err:
        build(text)
    assert needle in str(err.value)


def test_error_never_shows_a_secret():
    # An unescaped colon inside the secret splits it; the tail must not be echoed.
    with pytest.raises(OptionError) as err:
        build("provider=S3:key=AKEY:secret=first:TAILSECRET:")
    assert "TAILSECRET" not in str(err.value) and "first" not in str(err.value)
    assert "\\:" in str(err.value)


def test_credentials_file(tmp_path):
    creds = tmp_path / "creds"
    creds.write_text("# comment\n\nkey = FILEKEY\nsecret=FILESECRET\nregion=default\n")
    os.chmod(creds, 0o600)
    opts = build("provider=S3_RGW:host=h:credentials_file=%s:" % creds)
    assert opts.driver_kwargs["key"] == "FILEKEY" and opts.driver_kwargs["secret"] == "FILESECRET"
    assert set(opts.secrets) == {"FILEKEY", "FILESECRET"}
    assert not opts.warnings


def test_plugin_string_wins_over_credentials_file_and_world_readable_warns(tmp_path):
    creds = tmp_path / "creds"
    creds.write_text("key=FILEKEY\nsecret=FILESECRET\n")
    os.chmod(creds, 0o644)
    opts = build("provider=S3:key=STRINGKEY:credentials_file=%s:" % creds)
    assert opts.driver_kwargs["key"] == "STRINGKEY" and opts.driver_kwargs["secret"] == "FILESECRET"
    assert any("readable by everyone" in w for w in opts.warnings)


def test_bad_credentials_file_line(tmp_path):
    creds = tmp_path / "creds"
    creds.write_text("key FILEKEY\n")
    with pytest.raises(OptionError) as err:
        build("provider=S3:credentials_file=%s:" % creds)
    assert "line 1 is not key=value" in str(err.value)


def test_restore_needs_no_remote_options(tmp_path):
    opts = build("credentials_file=/gone/on/this/client:ca_file=/gone/too.pem:", need_remote=False)
    assert opts.provider is None and opts.ca_file is None


def test_repr_masks_secrets():
    assert "SEKRET" not in repr(build(BASE)) and "AKEY" not in repr(build(BASE))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_parser_never_crashes_and_never_leaks(text):
    optset = OptionSet()
    try:
        optset.add_string("provider=S3:key=K3YVALUE:secret=S3CRETVALUE:" + text)
        optset.build()
    except OptionError as exc:
        assert "S3CRETVALUE" not in str(exc) and "K3YVALUE" not in str(exc)


# -- incremental_margin ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, seconds",
    [("3600", 3600), ("0", 0), ("90s", 90), ("30m", 1800), ("2h", 7200), ("2H", 7200), (" 1d ", 86400),
     ("30d", 30 * 86400)],
)
def test_incremental_margin_takes_seconds_or_a_unit(value, seconds):
    assert build(BASE + "incremental_margin=%s:" % value).incremental_margin == seconds


def test_incremental_margin_defaults_to_an_hour():
    assert build(BASE).incremental_margin == 3600


@pytest.mark.parametrize(
    "value, needle",
    [
        ("2w", "incremental_margin='2w' is not a duration"),
        ("1.5h", "incremental_margin='1.5h' is not a duration"),
        ("-1", "incremental_margin='-1' is not a duration"),
        ("h", "incremental_margin='h' is not a duration"),
        ("31d", "incremental_margin=2678400 is too large (maximum 2592000)"),
    ],
)
def test_a_bad_incremental_margin_names_the_problem(value, needle):
    with pytest.raises(OptionError) as err:
        build(BASE + "incremental_margin=%s:" % value)
    assert needle in str(err.value)
