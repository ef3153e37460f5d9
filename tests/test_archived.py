"""Objects a plain GET cannot read: archive storage classes, end to end against moto.

moto models S3's storage classes: an object put with ``StorageClass=GLACIER`` or
``DEEP_ARCHIVE`` is listed with that class, and its GET answers 403 InvalidObjectState until a
restore request (``POST ?restore``, answered 202) made a copy; ``GLACIER_IR`` reads like any
object.  By default moto makes the copy readable at once (the HEAD's
``x-amz-restore: ongoing-request="false", expiry-date=...``).  Its state manager can hold the
restore "ongoing" instead: with the transition of ``s3::keyrestore`` set to manual progression
with ``times=1``, the first HEAD after the request answers ``ongoing-request="true"``, the next one
``"false"`` (fixture ``slow_restores``).
"""

import json
import os
import time
import urllib.request
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs

import pytest

from harness import plugin_string, restored_keys

from bareos_libcloud import naming

M_ERROR, M_WARNING = 4, 5


@pytest.fixture
def slow_restores(moto):
    """Restores that are still in progress at the first HEAD after the request (see above)."""

    def state_manager(action, body):
        request = urllib.request.Request(moto.endpoint_url + "/moto-api/state-manager/" + action,
                                         data=json.dumps(body).encode(), method="POST")
        urllib.request.urlopen(request).read()

    state_manager("set-transition", {"model_name": "s3::keyrestore",
                                     "transition": {"progression": "manual", "times": 1}})
    yield
    state_manager("unset-transition", {"model_name": "s3::keyrestore"})


def saved(result):
    return {naming.parse_fname(r.fname)[1]: r.read_bytes() for r in result.files if r.cataloged and not r.deleted}


def ours(result, kind=None):
    return [t for k, t in result.messages if t.startswith("python3-fd-mod: libcloud:") and (kind is None or k == kind)]


def summary(result):
    return [t for t in ours(result) if " listed, " in t][-1]


def object_requests(proxy, bucket, key, method=None):
    return [e for e in proxy.log if e.path == "/%s/%s" % (bucket, key)
            and (method is None or e.method == method)]


def put(moto, bucket, objects, storage_class):
    client = moto.boto3_client()
    for key, data in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=data, StorageClass=storage_class)


def state_files(fd):
    return [n for n in os.listdir(fd.workdir) if n.endswith(".restores")]


def state_entries(fd):
    entries = []
    for name in state_files(fd):
        with open(os.path.join(fd.workdir, name), encoding="utf-8") as handle:
            entries.extend(json.loads(line) for line in handle if line.strip())
    return entries


def journals(fd):
    return [n for n in os.listdir(fd.workdir) if n.endswith(".journal")]


def test_archived_objects_are_skipped_named_once_and_never_read(moto, proxy, fd, bucket_name):
    """archived=skip (the default): GLACIER and DEEP_ARCHIVE objects are never sent to a GET; one
    warning names them, the summary counts them; no error, nothing journaled.  GLACIER_IR (Instant
    Retrieval) reads like any object."""
    moto.make_bucket(bucket_name, {"fine": b"f"})
    put(moto, bucket_name, {"cold/g1": b"g1", "cold/g2": b"g2"}, "GLACIER")
    put(moto, bucket_name, {"deep": b"d"}, "DEEP_ARCHIVE")
    put(moto, bucket_name, {"instant": b"instant retrieval"}, "GLACIER_IR")
    result = fd.backup(plugin_string(moto, via=proxy, buckets_include=bucket_name, nb_prefetcher=2))
    assert result.status == "T", result.messages
    assert saved(result) == {"fine": b"f", "instant": b"instant retrieval"}
    assert not ours(result, M_ERROR)
    warnings = [t for t in ours(result, M_WARNING) if "archived" in t]
    assert len(warnings) == 1, result.messages
    assert "3 objects (storage class DEEP_ARCHIVE 1, GLACIER 2) archived, not saved" in warnings[0]
    for key in ("cold/g1", "cold/g2", "deep"):
        assert "%s/%s" % (bucket_name, key) in warnings[0]
        assert object_requests(proxy, bucket_name, key) == []  # never asked for
    assert "5 objects listed, 2 saved" in summary(result) and "; 3 archived, not saved" in summary(result)
    assert not journals(fd) and not state_files(fd)


def test_a_message_names_twenty_archived_objects_and_counts_the_rest(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, {"fine": b"f"})
    put(moto, bucket_name, {"g%02d" % i: b"x" for i in range(25)}, "GLACIER")
    result = fd.backup(plugin_string(moto, buckets_include=bucket_name, nb_prefetcher=2))
    assert result.status == "T", result.messages
    warnings = [t for t in ours(result, M_WARNING) if "archived" in t]
    assert len(warnings) == 1
    assert "25 objects (storage class GLACIER 25)" in warnings[0]
    assert warnings[0].count(bucket_name + "/g") == 20 and warnings[0].rstrip().endswith("and 5 more")


def test_an_estimate_counts_archived_objects_but_lists_only_readable_ones(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, {"fine": b"f"})
    put(moto, bucket_name, {"g": b"g"}, "GLACIER")
    result = fd.estimate(plugin_string(moto, buckets_include=bucket_name, archived="request"))
    assert result.status == "T", result.messages
    assert [line.rsplit("/", 1)[-1] for line in result.listing] == ["fine"]
    assert "; 1 archived, not saved" in summary(result)
    assert not state_files(fd)  # an estimate asks for no restore


def test_accurate_keeps_the_old_copy_of_an_object_that_was_archived(moto, fd, bucket_name, tmp_path):
    """An object saved while readable, then moved to an archive class (a copy onto itself with
    another class: a new Last-Modified), is not recorded as deleted: it still exists."""
    moto.make_bucket(bucket_name, {"doc": b"first copy", "other": b"o"})
    plugin = plugin_string(moto, buckets_include=bucket_name, nb_prefetcher=2)
    assert fd.backup(plugin, accurate=True).status == "T"
    time.sleep(1.1)
    moto.boto3_client().copy_object(Bucket=bucket_name, Key="doc", StorageClass="DEEP_ARCHIVE",
                                    CopySource={"Bucket": bucket_name, "Key": "doc"})
    moto.boto3_client().delete_object(Bucket=bucket_name, Key="other")
    inc = fd.backup(plugin, level="I", accurate=True)
    assert inc.status == "T", inc.messages
    assert saved(inc) == {}
    assert inc.deleted == [naming.object_fname(bucket_name, "other")]  # deleted; "doc" kept
    where = str(tmp_path / "restore")
    assert fd.restore(where=where).status == "T"
    assert restored_keys(where, bucket_name) == {"doc": b"first copy"}
    # Unchanged since, it stays kept (and is counted unchanged, not named again).
    again = fd.backup(plugin, level="I", accurate=True, since=int(time.time()) + 5)
    assert again.status == "T" and again.deleted == [] and "1 unchanged" in summary(again)
    assert not [t for t in ours(again, M_WARNING) if "archived" in t]


def test_archived_request_restores_then_saves_in_a_later_job(moto, proxy, fd, bucket_name, tmp_path,
                                                             slow_restores):
    """archived=request: the Full sends the restore requests (Standard tier, 7 days by default:
    the request's body says so) and records them; the next job finds the copy still being made
    (HEAD: ongoing-request="true"); the one after that saves the object; a job after that has
    nothing left to do for it."""
    data = os.urandom(5000)
    moto.make_bucket(bucket_name, {"fine": b"f"})
    put(moto, bucket_name, {"cold": data}, "GLACIER")
    plugin = plugin_string(moto, via=proxy, buckets_include=bucket_name, nb_prefetcher=2, archived="request",
                           restore_days=3, restore_tier="Bulk", incremental_margin=0)
    first = fd.backup(plugin)
    assert first.status == "T", first.messages
    assert saved(first) == {"fine": b"f"}
    assert "; 1 archived: 1 restore request sent, 0 pending, 0 restored and saved" in summary(first)
    posts = object_requests(proxy, bucket_name, "cold", "POST")
    assert len(posts) == 1 and "restore" in parse_qs(posts[0].query, keep_blank_values=True)
    assert object_requests(proxy, bucket_name, "cold", "GET") == []
    assert [(e["fname"], e["level"], e["tier"], e["days"]) for e in state_entries(fd)] == [
        (naming.object_fname(bucket_name, "cold"), "F", "Bulk", 3)]
    warning = [t for t in ours(first, M_WARNING) if "archived" in t]
    assert len(warning) == 1 and "%s/cold (restore requested)" % bucket_name in warning[0]

    second = fd.backup(plugin, level="I", since=int(time.time()) + 5)
    assert second.status == "T", second.messages
    assert saved(second) == {}
    assert "; 1 archived: 0 restore requests sent, 1 pending, 0 restored and saved" in summary(second)
    assert len(object_requests(proxy, bucket_name, "cold", "POST")) == 1  # not asked again

    third = fd.backup(plugin, level="F")
    assert third.status == "T", third.messages
    assert saved(third) == {"fine": b"f", "cold": data}
    assert "; 1 archived: 0 restore requests sent, 0 pending, 1 restored and saved" in summary(third)
    assert not state_files(fd)  # settled: a Full saved it
    where = str(tmp_path / "restore")
    assert fd.restore(where=where).status == "T"
    assert restored_keys(where, bucket_name) == {"fine": b"f", "cold": data}

    fourth = fd.backup(plugin, level="I", since=int(time.time()) + 5)
    assert fourth.status == "T" and saved(fourth) == {}
    assert "2 unchanged" in summary(fourth)


def test_a_restored_object_saved_by_an_incremental_is_saved_again_by_the_next_differential(
        moto, fd, bucket_name):
    """The journal's rule: an Incremental's copy is not in a Differential's "restore latest"."""
    moto.make_bucket(bucket_name, {"fine": b"f"})
    put(moto, bucket_name, {"cold": b"cold bytes"}, "GLACIER")
    plugin = plugin_string(moto, buckets_include=bucket_name, nb_prefetcher=2, archived="request",
                           restore_days=2, incremental_margin=0)
    full = fd.backup(plugin)  # moto: the copy is readable at once, but only the next job looks
    assert "1 restore request sent" in summary(full) and saved(full) == {"fine": b"f"}
    restore = moto.boto3_client().head_object(Bucket=bucket_name, Key="cold")["Restore"]
    expiry = parsedate_to_datetime(restore.split('expiry-date="')[1].rstrip('"')).timestamp()
    assert 1.9 < (expiry - time.time()) / 86400 <= 2  # the copy's days: restore_days
    inc = fd.backup(plugin, level="I", since=int(time.time()) + 5)
    assert saved(inc) == {"cold": b"cold bytes"} and "1 restored and saved" in summary(inc)
    assert state_files(fd)  # requested by a Full, saved by an Incremental: not settled
    diff = fd.backup(plugin, level="D", since=int(time.time()) + 5)
    assert saved(diff) == {"cold": b"cold bytes"}
    assert state_files(fd)
    full = fd.backup(plugin, level="F")
    assert saved(full) == {"fine": b"f", "cold": b"cold bytes"}
    assert not state_files(fd)


def test_a_refused_restore_request_is_one_error_naming_the_objects(moto, proxy, fd, bucket_name):
    moto.make_bucket(bucket_name, {"fine": b"f"})
    put(moto, bucket_name, {"a": b"a", "b": b"b"}, "DEEP_ARCHIVE")
    proxy.respond(403, times=None, method="POST", match="/%s/" % bucket_name, code="AccessDenied",
                  message="Access Denied")
    result = fd.backup(plugin_string(moto, via=proxy, buckets_include=bucket_name, nb_prefetcher=2,
                                     archived="request"))
    assert result.status == "W", result.messages
    assert saved(result) == {"fine": b"f"}
    errors = ours(result, M_ERROR)
    assert len(errors) == 1 and "2 archived objects could not be asked to be restored" in errors[0]
    assert "%s/a: access denied" % bucket_name in errors[0] and "%s/b:" % bucket_name in errors[0]
    assert "2 restore requests failed" in summary(result)
    assert not journals(fd) and not state_entries(fd)


def test_an_object_archived_after_the_listing_fails_naming_the_reason(moto, proxy, fd, bucket_name):
    """Listed as readable, its GET answers 403 InvalidObjectState (moved to an archive class after
    the listing, or an archive tier of INTELLIGENT_TIERING that no listing states): an error
    naming the reason, journaled, never retried."""
    moto.make_bucket(bucket_name, {"fine": b"f", "moved": b"m" * 3000})
    proxy.respond(403, times=None, method="GET", match="/%s/moved" % bucket_name,
                  body="<Error><Code>InvalidObjectState</Code><Message>The operation is not valid for the "
                       "object's storage class</Message><StorageClass>INTELLIGENT_TIERING</StorageClass>"
                       "<AccessTier>ARCHIVE_ACCESS</AccessTier></Error>")
    result = fd.backup(plugin_string(moto, via=proxy, buckets_include=bucket_name, nb_prefetcher=2))
    assert result.status == "W", result.messages
    errors = ours(result, M_ERROR)
    assert len(errors) == 1 and "'moved'" in errors[0]
    assert "archived in storage class INTELLIGENT_TIERING (ARCHIVE_ACCESS)" in errors[0]
    assert len(object_requests(proxy, bucket_name, "moved", "GET")) == 1
    assert journals(fd)


@pytest.mark.parametrize("extra, needle", [
    ({"archived": "sometimes"}, "archived='sometimes' is not one of skip, request"),
    ({"archived": "request", "restore_tier": "Fast"}, "restore_tier='Fast' is not one of Standard, Bulk, Expedited"),
    ({"archived": "request", "restore_days": "0"}, "restore_days=0 is too small"),
    ({"restore_days": "3"}, "restore_days applies only with archived=request"),
])
def test_bad_archive_options_fail_the_job_with_one_fatal_message(moto, fd, bucket_name, extra, needle):
    moto.make_bucket(bucket_name, {"k": b"v"})
    result = fd.backup(plugin_string(moto, buckets_include=bucket_name, **extra))
    fatals = [t for t in result.texts(3) if t.startswith("python3-fd-mod: libcloud:")]
    assert result.status == "f" and len(fatals) == 1 and needle in fatals[0], result.messages
    assert not result.files


def test_restore_requests_beside_a_listing_of_many_pages(moto, proxy, fd, bucket_name):
    """The lister reads the next page while it sends restore requests for this one: they go over
    a connection of their own (one connection used by two threads at once broke both)."""
    moto.make_bucket(bucket_name, {"fine": b"f"})
    cold = {"cold/%02d" % i: b"c%d" % i for i in range(12)}
    put(moto, bucket_name, cold, "GLACIER")
    proxy.cut_listing(after_keys=2, times=None)  # pages of two keys: the next is read ahead
    plugin = plugin_string(moto, via=proxy, buckets_include=bucket_name, nb_prefetcher=2, archived="request",
                           incremental_margin=0)
    first = fd.backup(plugin)
    assert first.status == "T", first.messages
    assert "; 12 archived: 12 restore requests sent, 0 pending" in summary(first)
    second = fd.backup(plugin, level="I", since=int(time.time()) + 5)
    assert second.status == "T", second.messages
    assert saved(second) == cold
    # Asked for by a Full, saved by an Incremental: still recorded (the next Full saves them again).
    assert sorted(e["fname"] for e in state_entries(fd)) == sorted(naming.object_fname(bucket_name, k) for k in cold)
