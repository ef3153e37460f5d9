"""Option parsing: the plugin string, the credentials file, and clear errors."""

import os
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bareos_libcloud.options import OptionError, OptionSet, check_names, split_plugin_string

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


# -- names the plugin does not know ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name, suggested",
    [("Buckets_Include", "buckets_include"), ("PREFIX", "prefix"), ("Provider", "provider"), ("Secret", "secret"),
     ("Incremental_Margin", "incremental_margin")],
)
def test_a_plugin_option_in_another_case_is_refused_naming_the_right_one(name, suggested):
    with pytest.raises(OptionError) as err:
        build(BASE + "%s=x:" % name)
    assert str(err.value) == "unknown option %s (did you mean %s?)" % (name, suggested)


def test_a_case_variant_in_the_credentials_file_is_refused_too(tmp_path):
    creds = tmp_path / "creds"
    creds.write_text("key=FILEKEY\nsecret=FILESECRET\nBuckets_Include=photos\n")
    os.chmod(creds, 0o600)
    with pytest.raises(OptionError) as err:
        build("provider=S3:credentials_file=%s:" % creds)
    assert "unknown option Buckets_Include (did you mean buckets_include?)" in str(err.value)
    assert "FILESECRET" not in str(err.value) and "FILEKEY" not in str(err.value)


@pytest.mark.parametrize(
    "names, params, expected",
    [
        (["bucket_include"], (), "unknown option bucket_include (did you mean buckets_include?)"),
        (["bucket_exclude"], (), "unknown option bucket_exclude (did you mean buckets_exclude?)"),
        (["prefixes"], ("host", "region"), "unknown option prefixes (did you mean prefix?)"),
        (["host", "regoin"], ("key", "host", "region"), "unknown option regoin (did you mean region?)"),
        (["Region"], ("key", "region"), "unknown option Region (did you mean region?)"),
        (["zzz"], ("key", "secret", "host", "port", "secure"),
         "unknown option zzz (neither the plugin's nor the libcloud driver for MINIO, which takes: host, port, "
         "secret, secure)"),
    ],
)
def test_check_names_names_the_option_and_the_closest_known_name(names, params, expected):
    with pytest.raises(OptionError) as err:
        check_names(names, params, driver="MINIO")
    assert str(err.value) == expected


def test_check_names_accepts_the_plugins_and_the_drivers_names():
    check_names(["buckets_include", "incremental_margin", "key", "secret", "provider", "signature_version"],
                {"key", "secret", "signature_version"}, driver="S3_RGW")


def test_a_name_right_after_a_secret_is_never_shown():
    """``secret=abc:TAIL=x``: an unescaped ':' in the secret makes its end look like an option."""
    opts = build("provider=S3:key=AKEY:secret=abc:TAILSECRET=x:host=h:")
    assert "TAILSECRET" in opts.driver_kwargs.unshown and "host" not in opts.driver_kwargs.unshown
    with pytest.raises(OptionError) as err:
        check_names(list(opts.driver_kwargs), {"key", "secret", "host"}, opts.driver_kwargs.unshown, "S3")
    assert "TAILSECRET" not in str(err.value) and "follows a secret option" in str(err.value)
    # What the helper processes get (pickled) keeps the mark.  (Built with the package as now
    # imported: the emulator's jobs import it afresh, and pickle looks the class up by name.)
    import importlib

    fresh = importlib.import_module("bareos_libcloud.options").OptionSet()
    fresh.add_string("provider=S3:key=AKEY:secret=abc:TAILSECRET=x:host=h:")
    kwargs = fresh.build().driver_kwargs
    assert pickle.loads(pickle.dumps(kwargs)).unshown == kwargs.unshown and "TAILSECRET" in kwargs.unshown


def test_a_driver_parameter_after_a_secret_is_accepted():
    opts = build("provider=S3:key=AKEY:secret=abc:host=h:bucket_include=x:")
    assert "host" in opts.driver_kwargs.unshown
    with pytest.raises(OptionError) as err:  # a typo elsewhere is named as usual
        check_names(list(opts.driver_kwargs), {"key", "secret", "host"}, opts.driver_kwargs.unshown, "S3")
    assert str(err.value) == "unknown option bucket_include (did you mean buckets_include?)"


def test_a_restore_takes_a_backup_string_with_names_no_longer_known():
    """A restore builds no driver; a string saved before names were checked still restores."""
    opts = build("provider=s3:key=AKEY:bucket_include=x:Buckets_Include=y:region=r:", need_remote=False)
    assert opts.provider == "S3" and opts.driver_kwargs["bucket_include"] == "x"


@pytest.mark.parametrize("value", ["s3_rgw", "S3_Rgw", " S3_RGW "])
def test_provider_names_are_case_insensitive(value):
    assert build(BASE.replace("provider=S3_RGW", "provider=" + value)).provider == "S3_RGW"


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


# -- selection, archived objects, shard mode (selection.py) -------------------------------------

def test_selection_options_are_parsed():
    opts = build(BASE + "include=**.jpg,docs/*:exclude=a\\,b,re\\:^tmp/:min_size=1K:max_size=2M:"
                 "newer_than=2024-01-31T120000Z:older_than=30d:storage_classes=standard,glacier_ir:"
                 "exclude_storage_classes=DEEP_ARCHIVE:archived=Request:restore_tier=bulk:restore_days=3:"
                 "shard=1/4:shard_by=PREFIX:")
    assert opts.include == ["**.jpg", "docs/*"] and opts.exclude == ["a\\,b", "re:^tmp/"]
    assert opts.min_size == 1024 and opts.max_size == 2 << 20
    assert opts.newer_than == ("at", 1706702400) and opts.older_than == ("age", 30 * 86400)
    assert opts.storage_classes == ["STANDARD", "GLACIER_IR"] and opts.exclude_storage_classes == ["DEEP_ARCHIVE"]
    assert (opts.archived, opts.restore_tier, opts.restore_days) == ("request", "Bulk", 3)
    assert opts.shard == (1, 4) and opts.shard_by == "prefix"


def test_selection_defaults():
    opts = build(BASE)
    assert opts.include is opts.exclude is opts.min_size is opts.max_size is None
    assert opts.newer_than is opts.older_than is opts.storage_classes is opts.exclude_storage_classes is None
    assert opts.archived == "skip" and opts.restore_tier is opts.restore_days is opts.shard_by is None


@pytest.mark.parametrize("text, needle", [
    ("include=[x:", "option include='[x' pattern '[x' has a '[' without its ']'"),
    ("exclude=,a:", "option exclude=',a' has an empty pattern"),
    ("max_size=-1:", "max_size='-1' is not a size"),
    ("min_size=5:max_size=4:", "min_size=5 is larger than max_size=4"),
    ("newer_than=2024-13-01:", "newer_than='2024-13-01' is not a valid date"),
    ("older_than=10 years:", "older_than='10 years' is neither a UTC date"),
    ("newer_than=2024-02-01:older_than=2024-01-01:", "newer_than and older_than leave no time"),
    ("storage_classes=STANDRAD:", "'STANDRAD' is not a storage class (did you mean STANDARD?)"),
    ("storage_classes=no such:", "'NO SUCH' is not a storage class name"),
    ("archived=maybe:", "archived='maybe' is not one of skip, request"),
    ("restore_tier=Bulk:", "restore_tier applies only with archived=request"),
    ("archived=request:restore_days=9999:", "restore_days=9999 is too large"),
    ("shard_by=prefix:", "shard_by=prefix needs shard=K/N"),
    ("shard=1/2:shard_by=range:", "shard_by='range' is not one of hash, prefix"),
    ("Include=x:", "unknown option Include (did you mean include?)"),
])
def test_bad_selection_options_name_the_problem(text, needle):
    with pytest.raises(OptionError) as err:
        build(BASE + text)
    assert needle in str(err.value)


def test_an_unknown_storage_class_is_kept_with_a_warning():
    opts = build(BASE + "storage_classes=COLDSTORE_7:")
    assert opts.storage_classes == ["COLDSTORE_7"]
    assert any("storage class COLDSTORE_7 is none that S3" in w for w in opts.warnings)


def test_a_restore_does_not_check_how_selection_options_combine():
    """An age moves on after the backup: a restore of its string must not fail on it."""
    opts = build("newer_than=1d:older_than=2024-01-01:restore_days=3:", need_remote=False)
    assert opts.newer_than == ("age", 86400) and opts.restore_days == 3
