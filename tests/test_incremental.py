"""Incrementals without accurate mode: the safety margin (Last-Modified comes from the object
store's clock, the since time from the director's; a multipart upload's Last-Modified is the
time it began).  Against moto, through the emulated daemon."""

import time


from harness import plugin_string

from bareos_libcloud import naming


def saved(result):
    return {naming.parse_fname(r.fname)[1]: r.read_bytes() for r in result.files if r.cataloged and not r.deleted}


def test_the_margin_saves_what_a_clock_ahead_of_the_store_would_miss(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, {"old": b"o"})
    plugin = plugin_string(moto, buckets_include=bucket_name, nb_prefetcher=2)
    assert fd.backup(plugin).status == "T"
    moto.boto3_client().put_object(Bucket=bucket_name, Key="late", Body=b"written after the Full")
    ahead = int(time.time()) + 120  # the director's clock runs two minutes ahead of the store's
    without = fd.backup(plugin + ":incremental_margin=0", level="I", since=ahead)
    assert saved(without) == {}  # what the margin is for
    inc = fd.backup(plugin, level="I", since=ahead)  # default margin: one hour
    assert inc.status == "T", inc.messages
    # Bareos's own check (mtime/ctime against the save time) must not drop it either.
    assert saved(inc) == {"late": b"written after the Full", "old": b"o"}
    assert fd.current_state()[naming.object_fname(bucket_name, "late")].read_bytes() == b"written after the Full"


def test_accurate_incrementals_need_no_margin(moto, fd, bucket_name):
    moto.make_bucket(bucket_name, {"old": b"o"})
    plugin = plugin_string(moto, buckets_include=bucket_name, nb_prefetcher=2)
    assert fd.backup(plugin, accurate=True).status == "T"
    moto.boto3_client().put_object(Bucket=bucket_name, Key="late", Body=b"late")
    inc = fd.backup(plugin, level="I", accurate=True, since=int(time.time()) + 120)
    assert saved(inc) == {"late": b"late"}  # the catalog comparison finds it, and only it
