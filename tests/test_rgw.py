"""End-to-end suite against Ceph radosgw: a real object store that checks signatures.

Runs in CI (which installs Ceph); skipped with a visible notice on a machine without it.
"""

import os
import time

import pytest

from fdemu import FileDaemon
from harness import MiB, all_files_under, bucket_objects, plugin_string, restored_keys

from bareos_libcloud import naming

HOSTILE = {
    "caf\u00e9 nfc": b"nfc",
    "cafe\u0301 nfd": b"nfd",
    "with space": b"space",
    "plus+sign": b"plus",
    "percent%": b"percent",
    "literal%2Fslash": b"encoded slash",
    "hash#frag": b"hash",
    "question?mark": b"q",
    "amp&x=1": b"amp",
    "back\\slash": b"backslash",
    "new\nline": b"newline",
    "tab\tand\x01ctrl\x1f": b"controls",
    "/leading-slash": b"leading",
    "double//slash": b"double",
    "dot/./segment": b"dot",
    "dotdot/../segment": b"dotdot",
    "../../etc/passwd": b"root:x:0:0::/root:/bin/sh\n",
    ".": b"just a dot",
    "..": b"just two dots",
    "marker/": b"",
    "marker-with-data/": b"folder marker holding bytes",
    "both": b"file both",
    "both/inner": b"file both/inner",
    "k" * 1024: b"1024-byte key",
    "seg/" + "s" * 300 + "/end": b"300-byte segment",
    "ü/日本/🚀": b"unicode path",
}
DOT_KEYS = {k for k in HOSTILE if any(s in (".", "..") for s in k.split("/"))}


@pytest.fixture
def fd(tmp_path):
    return FileDaemon(str(tmp_path / "fd"))


def saved(result):
    return {rec.fname: rec for rec in result.files if rec.cataloged and not rec.deleted}


@pytest.mark.parametrize("signature", ["2", "4"])
def test_full_accurate_incremental_and_restore(rgw, fd, bucket_name, tmp_path, signature):
    objects = {"a.txt": b"a", "dir/b": os.urandom(70000), "big": os.urandom(12 * MiB + 1), "empty": b""}
    rgw.make_bucket(bucket_name, objects)
    time.sleep(1.1)
    plugin = plugin_string(rgw, buckets_include=bucket_name, nb_prefetcher=4, prefetch_size="4M",
                           signature_version=signature)
    full = fd.backup(plugin, accurate=True)
    assert full.status == "T", full.messages
    assert {f: r.read_bytes() for f, r in saved(full).items()} == {
        naming.object_fname(bucket_name, k): v for k, v in objects.items()
    }
    time.sleep(1.1)
    client = rgw.boto3_client()
    client.put_object(Bucket=bucket_name, Key="added", Body=b"new")
    client.put_object(Bucket=bucket_name, Key="a.txt", Body=b"changed")
    client.delete_object(Bucket=bucket_name, Key="dir/b")
    inc = fd.backup(plugin, level="I", accurate=True)
    assert inc.status == "T", inc.messages
    assert set(saved(inc)) == {naming.object_fname(bucket_name, k) for k in ("added", "a.txt")}
    assert inc.deleted == [naming.object_fname(bucket_name, "dir/b")]

    where = str(tmp_path / "restore")
    assert fd.restore(where=where).status == "T"
    assert restored_keys(where, bucket_name) == bucket_objects(rgw, bucket_name)


def test_hostile_names_round_trip_exactly(rgw, fd, bucket_name, tmp_path):
    rgw.make_bucket(bucket_name, HOSTILE)
    assert bucket_objects(rgw, bucket_name) == HOSTILE  # the fixture stored them exactly
    plugin = plugin_string(rgw, buckets_include=bucket_name, nb_prefetcher=4, signature_version="4")
    result = fd.backup(plugin)
    assert result.status == "T", result.messages
    stored = {naming.parse_fname(f)[1]: r.read_bytes() for f, r in saved(result).items()}
    assert stored == HOSTILE

    outside = tmp_path / "outside"
    where = outside / "restore"
    where.mkdir(parents=True)
    restore = fd.restore(where=str(where))
    assert restore.status == "T", restore.messages
    assert restored_keys(str(where), bucket_name) == HOSTILE
    every_file = all_files_under(str(outside))
    assert all(path.startswith(str(where) + "/@libcloud/") for path in every_file)
    assert len(every_file) == len(HOSTILE)
    assert not os.path.exists(os.path.join(str(outside), "etc"))


def test_dot_keys_with_signature_v2_are_named_not_saved_wrong(rgw, fd, bucket_name):
    objects = {"dotdot/../segment": b"dotdot", "segment": b"another object", ".": b"dot", "plain": b"p"}
    rgw.make_bucket(bucket_name, objects)
    result = fd.backup(plugin_string(rgw, buckets_include=bucket_name, nb_prefetcher=2, signature_version="2"))
    stored = {naming.parse_fname(f)[1]: r.read_bytes() for f, r in saved(result).items()}
    for key, data in stored.items():
        assert data == objects[key]  # never another object's bytes
    errors = result.texts(4)
    for key in objects.keys() - stored.keys():
        assert any(repr(key) in e and "signature_version=4" in e for e in errors), errors
    assert result.status == "W"


def test_refused_credentials_fail_at_start_without_showing_them(rgw, fd, bucket_name):
    rgw.make_bucket(bucket_name, {"k": b"v"})
    wrong = "Wr0ngSecretValue1234567890"
    plugin = plugin_string(rgw, buckets_include=bucket_name).replace(rgw.secret, wrong)
    result = fd.backup(plugin)
    assert result.status == "f"
    ours = [t for t in result.texts() if t.startswith("python3-fd-mod:")]
    fatals = [t for t in ours if "refused the credentials" in t]
    assert len(fatals) == 1, result.messages
    assert not any(wrong in t or rgw.key in t for t in ours)
    assert not result.files


def test_an_object_that_failed_is_saved_by_the_next_incremental(rgw, fd, bucket_name):
    """The retry journal: a non-accurate incremental saves an old object that failed before; it
    stays journaled (saved by every job) until a Full saves it (journal.py: levels)."""
    rgw.make_bucket(bucket_name, {"dotdot/../segment": b"unreadable with SigV2", "plain": b"p"})
    time.sleep(1.1)
    v2 = plugin_string(rgw, buckets_include=bucket_name, nb_prefetcher=2, signature_version="2", retries=1,
                       incremental_margin=0)
    full = fd.backup(v2)
    assert full.status == "W"
    assert set(saved(full)) == {naming.object_fname(bucket_name, "plain")}
    journals = [n for n in os.listdir(fd.workdir) if n.endswith(".journal")]
    assert len(journals) == 1

    v4 = v2.replace("signature_version=2", "signature_version=4")
    inc = fd.backup(v4, level="I")
    assert inc.status == "T", inc.messages
    assert {naming.parse_fname(f)[1]: r.read_bytes() for f, r in saved(inc).items()} == {
        "dotdot/../segment": b"unreadable with SigV2"
    }
    assert len([n for n in os.listdir(fd.workdir) if n.endswith(".journal")]) == 1
    assert set(saved(fd.backup(v4, level="D"))) == {naming.object_fname(bucket_name, "dotdot/../segment")}
    assert fd.backup(v4, level="F").status == "T"
    assert not [n for n in os.listdir(fd.workdir) if n.endswith(".journal")]
    assert not saved(fd.backup(v4, level="I"))


def test_a_hostile_key_at_a_page_boundary_is_listed_once(rgw, fd, bucket_name):
    """The next page is requested from the raw text of the last key of a page (listing.py): a
    key full of characters that XML or URLs encode, exactly there, must be listed once."""
    keys = ["k%04d" % i for i in range(1003)]
    keys[999] = "k0999 plus+ pct%26 amp& lt< \u00e9\nend"  # the 1000th key: the end of page one
    rgw.make_bucket(bucket_name, {k: b"" for k in keys}, threads=32)
    result = fd.estimate(plugin_string(rgw, buckets_include=bucket_name))
    listed = [line.rsplit(" /@libcloud/", 1)[1] for line in result.listing]
    assert sorted(naming.parse_fname("/@libcloud/" + line)[1] for line in listed) == sorted(keys)


def test_hostile_names_go_back_into_a_bucket_exactly(rgw, fd, bucket_name, tmp_path):
    """restore_to=bucket gives every key back as it was (the names are reversible), signed with
    SigV4 as the backup was; no other key appears."""
    rgw.make_bucket(bucket_name, HOSTILE)
    plugin = plugin_string(rgw, buckets_include=bucket_name, nb_prefetcher=4, signature_version="4")
    assert fd.backup(plugin).status == "T"
    target = bucket_name[:50] + "-back"
    restore = fd.restore(where=str(tmp_path / "spool"),
                         plugin_options="python3:restore_to=bucket:restore_bucket=" + target)
    assert restore.status == "T", restore.messages
    assert bucket_objects(rgw, target) == HOSTILE
