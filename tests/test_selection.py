"""Selection options: include/exclude patterns, sizes, dates and storage classes.

Parsed at the job's start (one fatal message naming a bad option), applied in the lister, shown
in the job log and by ``estimate listing``; in accurate mode an object that leaves the selection
is recorded as deleted, as a file that leaves a FileSet.  End to end against moto (and Azurite
for Azure's access tiers).
"""

import calendar
import time

import pytest

from harness import plugin_string, restored_keys

from bareos_libcloud import naming
from bareos_libcloud.selection import Selection, SelectionError, compile_patterns, parse_when, split_patterns

M_FATAL, M_ERROR, M_INFO = 3, 4, 6


def saved(result):
    return {naming.parse_fname(r.fname)[1]: r.read_bytes() for r in result.files if r.cataloged and not r.deleted}


def ours(result, kind=None):
    return [t for k, t in result.messages if t.startswith("python3-fd-mod: libcloud:") and (kind is None or k == kind)]


def summary(result):
    return [t for t in ours(result) if " listed, " in t][-1]


def backup(fd, server, bucket, level="F", **options):
    options.setdefault("nb_prefetcher", 2)
    return fd.backup(plugin_string(server, buckets_include=bucket, **options), level=level)


# -- patterns ---------------------------------------------------------------------------------

KEYS = ["a.jpg", "x/a.jpg", "x/y/b.JPG", "x/y/c.jpg", "docs/readme", "docs/sub/deep", "tmp/t.jpg",
        "a,b.txt", "star*name", "q1", "q22", "logs/2024-01/x.log", "logs/2023-12/y.log"]


@pytest.mark.parametrize("patterns, expected", [
    ("*.jpg", ["a.jpg"]),  # * stays within a segment
    ("**.jpg", ["a.jpg", "x/a.jpg", "x/y/c.jpg", "tmp/t.jpg"]),
    ("**/*.jpg", ["a.jpg", "x/a.jpg", "x/y/c.jpg", "tmp/t.jpg"]),  # **/ : zero or more segments
    ("x/**", ["x/a.jpg", "x/y/b.JPG", "x/y/c.jpg"]),
    ("docs/*", ["docs/readme"]),
    ("q?", ["q1"]),
    ("q[0-9][0-9]", ["q22"]),
    ("q[!1]*", ["q22"]),
    ("a\\,b.txt", ["a,b.txt"]),  # a comma inside a pattern
    ("star\\*name", ["star*name"]),
    ("logs/2024-*/**", ["logs/2024-01/x.log"]),
    ("re:\\.(jpg|JPG)$", ["a.jpg", "x/a.jpg", "x/y/b.JPG", "x/y/c.jpg", "tmp/t.jpg"]),
    ("re:^docs/,q1", ["docs/readme", "docs/sub/deep", "q1"]),
])
def test_patterns(patterns, expected):
    match = compile_patterns(split_patterns(patterns))
    assert [key for key in KEYS if match(key)] == expected


@pytest.mark.parametrize("value, needle", [
    ("a,,b", "empty pattern"),
    ("[abc", "'[' without its ']'"),
    ("q[z-a]", "bad character set"),
    ("re:(unclosed", "regular expression '(unclosed' is not valid"),
    ("abc\\", "lone backslash"),
])
def test_bad_patterns(value, needle):
    with pytest.raises(SelectionError) as err:
        compile_patterns(split_patterns(value))
    assert needle in str(err.value)


def test_include_then_exclude_and_the_other_filters():
    now = calendar.timegm((2024, 6, 1, 0, 0, 0))
    spec = {"include": ["**.jpg"], "exclude": ["tmp/**"], "min_size": 10, "max_size": 100,
            "newer_than": ("age", 30 * 86400), "older_than": parse_when("2024-05-31T12:00:00Z"),
            "exclude_storage_classes": ["GLACIER_IR"]}
    sel = Selection(spec, now)
    recent = now - 86400
    assert sel.selected("x/a.jpg", 10, recent, None)  # None: STANDARD
    assert not sel.selected("tmp/t.jpg", 50, recent, None)  # excluded
    assert not sel.selected("x/a.png", 50, recent, None)  # not included
    assert not sel.selected("x/a.jpg", 9, recent, None) and sel.selected("x/a.jpg", 100, recent, None)
    assert not sel.selected("x/a.jpg", 101, recent, None)
    assert not sel.selected("x/a.jpg", 50, now - 30 * 86400 - 1, None)  # older than 30 days
    assert sel.selected("x/a.jpg", 50, now - 30 * 86400, None)
    assert not sel.selected("x/a.jpg", 50, calendar.timegm((2024, 5, 31, 12, 0, 0)), None)  # not older
    assert not sel.selected("x/a.jpg", 50, recent, "GLACIER_IR")
    assert not sel.selected("x/a.jpg", 50, None, None)  # no Last-Modified: the job's start, not older


@pytest.mark.parametrize("value, when", [
    ("2024-01-31", ("at", calendar.timegm((2024, 1, 31, 0, 0, 0)))),
    ("2024-01-31T12:30:00Z", ("at", calendar.timegm((2024, 1, 31, 12, 30, 0)))),
    ("2024-01-31T123000Z", ("at", calendar.timegm((2024, 1, 31, 12, 30, 0)))),
    ("2024-01-31T12:30", ("at", calendar.timegm((2024, 1, 31, 12, 30, 0)))),
    ("30d", ("age", 30 * 86400)), ("12h", ("age", 43200)), ("90m", ("age", 5400)), ("2w", ("age", 14 * 86400)),
])
def test_dates_and_ages(value, when):
    assert parse_when(value) == when


# -- end to end -------------------------------------------------------------------------------

FILES = {"photo.jpg": b"j" * 100, "album/one.jpg": b"1" * 2000, "album/tmp/two.jpg": b"2" * 30,
         "album/notes.txt": b"n" * 500, "a,b.jpg": b"comma", "docs/big.pdf": b"p" * 5000}


def test_include_and_exclude_patterns(moto, fd, bucket_name, tmp_path):
    moto.make_bucket(bucket_name, FILES)
    result = backup(fd, moto, bucket_name, include="**.jpg,docs/*", exclude="**/tmp/**,a\\,b.jpg")
    assert result.status == "T", result.messages
    expected = {k: FILES[k] for k in ("photo.jpg", "album/one.jpg", "docs/big.pdf")}
    assert saved(result) == expected
    assert "3 objects listed, 3 saved" in summary(result) and "; 3 left out by the selection" in summary(result)
    shown = [t for t in ours(result, M_INFO) if "selection within the buckets" in t]
    assert len(shown) == 1 and "include **.jpg,docs/*; exclude **/tmp/**,a\\,b.jpg" in shown[0]
    where = str(tmp_path / "restore")
    assert fd.restore(where=where).status == "T"
    assert restored_keys(where, bucket_name) == expected


def test_patterns_apply_after_the_prefix_and_regexes(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, FILES)
    # In a plugin string the ':' of "re:" is written "\:" (a credentials_file line needs no escape).
    result = backup(fd, moto, bucket_name, prefix="album/", include="re\\:\\.(txt|jpg)$", exclude="re\\:/tmp/")
    assert result.status == "T", result.messages
    assert saved(result) == {"album/one.jpg": FILES["album/one.jpg"], "album/notes.txt": FILES["album/notes.txt"]}


def test_sizes(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, FILES)
    result = backup(fd, moto, bucket_name, min_size="100", max_size="2K")
    assert result.status == "T", result.messages
    assert set(saved(result)) == {"photo.jpg", "album/one.jpg", "album/notes.txt"}


def test_dates(moto, fd, bucket_name):
    """Absolute UTC dates split the bucket at a second between two uploads; ages select by the
    job's start (every object here is seconds old)."""
    moto.make_bucket(bucket_name, {"old": b"o"})
    time.sleep(1.1)
    boundary = int(time.time()) + 1
    time.sleep(boundary - time.time() + 0.1)
    moto.boto3_client().put_object(Bucket=bucket_name, Key="new", Body=b"n")
    stamp = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime(boundary))  # no ':' to escape
    escaped = time.strftime("%Y-%m-%dT%H\\:%M\\:%SZ", time.gmtime(boundary))  # 12\:00\:00
    assert set(saved(backup(fd, moto, bucket_name, newer_than=stamp))) == {"new"}
    assert set(saved(backup(fd, moto, bucket_name, older_than=escaped))) == {"old"}
    assert set(saved(backup(fd, moto, bucket_name, newer_than="1h"))) == {"old", "new"}
    nothing = backup(fd, moto, bucket_name, older_than="1d")
    assert saved(nothing) == {} and nothing.status == "W"  # a line that selects nothing is an error
    assert any("the selection (older_than 86400 s before the job's start) left out all 2 objects" in t
               for t in ours(nothing, M_INFO)), nothing.messages


def test_storage_classes(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, {"standard": b"s"})
    client = moto.boto3_client()
    for key, storage_class in (("ia", "STANDARD_IA"), ("one", "ONEZONE_IA"), ("instant", "GLACIER_IR"),
                               ("rr", "REDUCED_REDUNDANCY")):
        client.put_object(Bucket=bucket_name, Key=key, Body=key.encode(), StorageClass=storage_class)
    chosen = backup(fd, moto, bucket_name, storage_classes="standard_ia,GLACIER_IR")
    assert chosen.status == "T", chosen.messages
    assert set(saved(chosen)) == {"ia", "instant"}
    rest = backup(fd, moto, bucket_name, exclude_storage_classes="STANDARD_IA,ONEZONE_IA")
    assert set(saved(rest)) == {"standard", "instant", "rr"}
    standard = backup(fd, moto, bucket_name, storage_classes="STANDARD")
    assert set(saved(standard)) == {"standard"}


def test_estimate_listing_shows_only_the_selection(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, FILES)
    result = fd.estimate(plugin_string(moto, buckets_include=bucket_name, include="album/**", max_size="1K"))
    assert result.status == "T", result.messages
    assert sorted(line.split(bucket_name + "/", 1)[1] for line in result.listing) == [
        "album/notes.txt", "album/tmp/two.jpg"]
    assert any("selection within the buckets: include album/**; max_size 1024" in t for t in ours(result, M_INFO))


@pytest.mark.parametrize("options", [{"exclude": "album/**"}, {"min_size": "1K"}],
                         ids=["pattern", "size"])
def test_accurate_records_an_object_that_leaves_the_selection_as_deleted(moto, fd, bucket_name, tmp_path,
                                                                        options):
    """As a file that leaves a FileSet: the job that no longer selects it records it deleted (its
    copies stay in the earlier jobs: restore those by job id, or keep old copies in another Job)."""
    moto.make_bucket(bucket_name, FILES)
    plugin = plugin_string(moto, buckets_include=bucket_name, nb_prefetcher=2)
    full = fd.backup(plugin, accurate=True)
    assert full.status == "T" and len(saved(full)) == len(FILES)
    narrower = plugin_string(moto, buckets_include=bucket_name, nb_prefetcher=2, **options)
    inc = fd.backup(narrower, level="I", accurate=True, since=int(time.time()) + 5)
    assert inc.status == "T", inc.messages
    stay = (lambda k: not k.startswith("album/")) if "exclude" in options else (lambda k: len(FILES[k]) >= 1024)
    assert sorted(inc.deleted) == sorted(naming.object_fname(bucket_name, k) for k in FILES if not stay(k))
    where = str(tmp_path / "latest")
    assert fd.restore(where=where).status == "T"
    assert restored_keys(where, bucket_name) == {k: v for k, v in FILES.items() if stay(k)}
    old = str(tmp_path / "full")
    assert fd.restore(where=old, jobid=full.jobid).status == "T"
    assert restored_keys(old, bucket_name) == FILES


@pytest.mark.parametrize("extra, needle", [
    ({"include": "[abc"}, "option include='[abc' pattern '[abc' has a '[' without its ']'"),
    ({"exclude": "a,,b"}, "option exclude='a,,b' has an empty pattern"),
    ({"include": "re\\:(x"}, "option include='re:(x' regular expression '(x' is not valid"),
    ({"min_size": "big"}, "min_size='big' is not a size"),
    ({"min_size": "2K", "max_size": "1K"}, "min_size=2048 is larger than max_size=1024"),
    ({"newer_than": "yesterday"}, "option newer_than='yesterday' is neither a UTC date"),
    ({"older_than": "2024-02-30"}, "option older_than='2024-02-30' is not a valid date"),
    ({"newer_than": "1d", "older_than": "2d"}, "newer_than and older_than leave no time between them"),
    ({"storage_classes": "GLACIR"}, "'GLACIR' is not a storage class (did you mean GLACIER?)"),
    ({"storage_classes": "GLACIER", "exclude_storage_classes": "glacier"},
     "storage class GLACIER is both in storage_classes and exclude_storage_classes"),
])
def test_bad_selection_options_fail_the_job_with_one_fatal_message(moto, fd, bucket_name, extra, needle):
    moto.make_bucket(bucket_name, {"k": b"v"})
    result = backup(fd, moto, bucket_name, **extra)
    fatals = ours(result, M_FATAL)
    assert result.status == "f" and len(fatals) == 1 and needle in fatals[0], result.messages
    assert not result.files


def test_an_unknown_storage_class_is_used_with_a_warning(moto, fd, bucket_name):
    """A store may define its own classes (a Ceph RGW placement): not refused, but said."""
    moto.make_bucket(bucket_name, {"k": b"v"})
    result = backup(fd, moto, bucket_name, storage_classes="STANDARD,COLDSTORE_7")
    assert result.status == "T" and set(saved(result)) == {"k"}
    assert any("storage class COLDSTORE_7 is none that S3" in t for t in ours(result, 5))


def test_an_estimate_that_fails_at_its_start_leaves_no_helper_running(moto, fd, bucket_name):
    """The lister refuses the options (here a driver option no driver takes): one fatal message,
    and no helper process outlives the estimate, which gets no JobEnd event after a fatal."""
    moto.make_bucket(bucket_name, {"k": b"v"})
    result = fd.estimate(plugin_string(moto, buckets_include=bucket_name, frobnicate="x"))
    assert result.status == "f" and len(ours(result, M_FATAL)) == 1
    assert not result.emulator_errors


# -- Azure: access tiers as storage classes ----------------------------------------------------

def _set_tier(azurite, container, key, tier):
    drv = azurite.libcloud_driver()
    response = drv.connection.request("/%s/%s" % (container, key), params={"comp": "tier"}, method="PUT",
                                      headers={"x-ms-access-tier": tier})
    assert response.status == 200


def test_azure_access_tiers_are_storage_classes_and_archive_is_skipped(azurite, fd, bucket_name):
    """libcloud's Azure listing reads <AccessTier> but keeps it nowhere; the lister keeps it.  An
    Archive blob (Azurite answers its GET 409 BlobArchived, as Azure does) is skipped and named."""
    azurite.make_bucket(bucket_name, {"hot": b"h", "cool": b"c", "frozen": b"f"})
    _set_tier(azurite, bucket_name, "cool", "Cool")
    _set_tier(azurite, bucket_name, "frozen", "Archive")
    everything = backup(fd, azurite, bucket_name)
    assert everything.status == "T", everything.messages
    assert saved(everything) == {"hot": b"h", "cool": b"c"}
    warnings = [t for t in ours(everything, 5) if "archived" in t]
    assert len(warnings) == 1 and "(storage class ARCHIVE 1)" in warnings[0] and "/frozen" in warnings[0]
    cool = backup(fd, azurite, bucket_name, storage_classes="cool")
    assert cool.status == "T" and saved(cool) == {"cool": b"c"}


@pytest.mark.parametrize("extra, needle", [
    ({"shard": "1/2", "shard_by": "prefix"}, "shard_by=prefix needs a listing by delimiter"),
    ({"archived": "request"}, "archived=request sends S3 restore requests"),
])
def test_options_azure_cannot_honour_fail_at_the_start(azurite, fd, bucket_name, extra, needle):
    azurite.make_bucket(bucket_name, {"k": b"v"})
    result = backup(fd, azurite, bucket_name, **extra)
    fatals = ours(result, M_FATAL)
    assert result.status == "f" and len(fatals) == 1 and needle in fatals[0], result.messages
    assert not result.files


def test_patterns_and_storage_classes_on_each_server(s3, fd, bucket_name):
    """radosgw states STANDARD for every key (a store may leave it out: that is STANDARD too)."""
    s3.make_bucket(bucket_name, FILES)
    result = backup(fd, s3, bucket_name, include="album/**", exclude="**/tmp/**", storage_classes="STANDARD")
    assert result.status == "T", result.messages
    assert saved(result) == {"album/one.jpg": FILES["album/one.jpg"], "album/notes.txt": FILES["album/notes.txt"]}
    none = backup(fd, s3, bucket_name, storage_classes="STANDARD_IA")
    assert none.status == "W" and saved(none) == {}
