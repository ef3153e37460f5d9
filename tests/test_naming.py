"""The backup name of an object: reversible, stable, and safe as a path."""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bareos_libcloud import naming

HOSTILE_KEYS = [
    "a", "a/b", "a//b", "/lead", "a/", "/", "//", ".", "..", "a/../b", "a/./c", "../../etc/passwd",
    "x%y", "%2F", "%", "new\nline", "tab\t", "nul\x00", "del\x7f", "c1\x85", "ü/日本/🚀", "u\u0308", "\u00fc",
    "sp ace", " lead", "trail ", "q?x#y&z+w", "back\\slash", "y" * 1024, "k/" + "x" * 300,
    "a" * 254 + ".", "." * 256, "%" * 200, "é" * 200, "a" * 300 + "/", "a/" + "b" * 253,
]


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_name_round_trips_and_is_a_safe_path(key):
    fname = naming.object_fname("bucket-1", key)
    assert naming.parse_fname(fname) == ("bucket-1", key)
    assert fname.startswith("/@libcloud/bucket-1/")
    for segment in fname.split("/")[1:]:
        assert segment not in ("", ".", "..")
        assert len(segment.encode("utf-8")) <= 255
        assert not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in segment)


def test_plain_keys_stay_readable():
    assert naming.object_fname("photos", "2024/06/beach.jpg") == "/@libcloud/photos/2024/06/beach.jpg"
    assert naming.object_fname("b", "a b+c") == "/@libcloud/b/a b+c"


def test_documented_mapping():
    # docs/naming.md lists these; keep them stable across versions.
    assert naming.object_fname("b", "a//b") == "/@libcloud/b/a%2F%2Fb"
    assert naming.object_fname("b", "/lead") == "/@libcloud/b/%2Flead"
    assert naming.object_fname("b", "dir/") == "/@libcloud/b/dir%2F"
    assert naming.object_fname("b", "a/../b") == "/@libcloud/b/a/%2E%2E/b"
    assert naming.object_fname("b", "50%") == "/@libcloud/b/50%25"
    assert naming.object_fname("b", "l1\nl2") == "/@libcloud/b/l1%0Al2"
    long = naming.object_fname("b", "x" * 300).split("/")
    assert long[3] == "x" * 254 + "%" and long[4] == "x" * 46


def test_bucket_with_slash_is_one_segment():
    fname = naming.object_fname("a/b", "k")
    assert fname == "/@libcloud/a%2Fb/k"
    assert naming.parse_fname(fname) == ("a/b", "k")


@pytest.mark.parametrize(
    "fname",
    ["/etc/passwd", "/@libcloud/b", "/@libcloud/b/a/../c", "/@libcloud/b/%zz", "/@libcloud/b/a%", "/@libcloud/b/a%2fb"],
)
def test_foreign_or_non_canonical_names_are_rejected(fname):
    with pytest.raises(naming.BadName):
        naming.parse_fname(fname)


def test_empty_key_cannot_be_named():
    with pytest.raises(naming.BadName):
        naming.object_fname("b", "")


def test_folder_object_place_differs_from_every_key():
    plain = naming.restore_segments("b", "a")
    moved = naming.restore_segments("b", "a", as_file_in_folder=True)
    assert plain == ["@libcloud", "b", "a"] and moved == ["@libcloud", "b", "a%obj"]
    with pytest.raises(naming.BadName):
        naming.parse_fname("/@libcloud/b/a%obj")


@settings(max_examples=400, deadline=None)
@given(st.text(min_size=1, max_size=400), st.text(min_size=1, max_size=40))
def test_any_key_round_trips(key, bucket):
    fname = naming.object_fname(bucket, key)
    assert naming.parse_fname(fname) == (bucket, key)
    segments = fname.split("/")[1:]
    assert all(s not in ("", ".", "..") and len(s.encode()) <= 255 for s in segments)
    assert os.path.normpath(fname) == fname


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=30), min_size=2, max_size=4, unique=True))
def test_distinct_keys_have_distinct_names(keys):
    assert len({naming.object_fname("b", k) for k in keys}) == len(keys)
