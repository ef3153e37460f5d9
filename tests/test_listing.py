"""Listing pages that say "more follows" in odd ways, answered by tests/faultproxy.py in front of moto.

A listing that ends early must never look like a bucket that ends there: an accurate job would
record every object after that point as deleted.
"""

import re
import time


from harness import plugin_string

from bareos_libcloud import naming

M_ERROR = 4
OBJECTS = {"k%02d" % i: b"%d" % i for i in range(12)}


def ours(result, kind):
    return [t for k, t in result.messages if k == kind and t.startswith("python3-fd-mod: libcloud:")]


def listed(result):
    return {naming.parse_fname(r.fname)[1] for r in result.files}


def after_marker(bucket, marker):
    """The listing request of ``bucket`` that asks for the page after ``marker``."""
    return re.compile(r"^/%s/?\?(.*&)?marker=%s(&|$)" % (re.escape(bucket), re.escape(marker)))


def first_page(bucket):
    return re.compile(r"^/%s/?\?(?!(.*&)?marker=)" % re.escape(bucket))


def empty_page(bucket, marker, next_marker=""):
    """A ListObjects page, truncated, with no <Contents>; ``next_marker``: its NextMarker."""
    tail = "<NextMarker>%s</NextMarker>" % next_marker if next_marker else ""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>%s</Name>'
            "<Prefix></Prefix><Marker>%s</Marker><MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType>"
            "<IsTruncated>true</IsTruncated>%s</ListBucketResult>" % (bucket, marker, tail))


def full_then_accurate_incremental(fd, moto, proxy, bucket, arrange):
    """A Full through the proxy, then ``arrange(proxy)`` and an accurate incremental."""
    moto.make_bucket(bucket, OBJECTS)
    plugin = plugin_string(moto, via=proxy, buckets_include=bucket, nb_prefetcher=2, retries=3, retry_max_wait=0)
    full = fd.backup(plugin, accurate=True)
    assert full.status == "T", full.messages
    time.sleep(1.1)  # Last-Modified has one-second resolution
    proxy.cut_listing(after_keys=5, times=1, match=first_page(bucket))  # a short first page: k00-k04
    arrange(proxy)
    return fd.backup(plugin, level="I", accurate=True)


def test_a_truncated_empty_page_is_retried_then_fails_the_bucket_and_deletes_nothing(moto, proxy, fd,
                                                                                     bucket_name):
    """IsTruncated=true, no <Contents>, no NextMarker: the listing cannot go on. Old code took it
    for the bucket's end and recorded k05..k11 as deleted."""
    def arrange(p):
        p.cut_listing(after_keys=0, times=None, match=after_marker(bucket_name, "k04"))

    inc = full_then_accurate_incremental(fd, moto, proxy, bucket_name, arrange)
    assert inc.status == "W", inc.messages
    assert inc.deleted == []
    errors = ours(inc, M_ERROR)
    assert len(errors) == 1, inc.messages
    assert repr(bucket_name) in errors[0] and "listing did not finish" in errors[0], errors
    assert listed(inc) == {"k%02d" % i for i in range(5)}  # what was listed before the page
    asked = [e for e in proxy.entries(method="GET", match=after_marker(bucket_name, "k04"))]
    assert len(asked) == 3  # retries=3: the same page asked for three times, from the same marker
    state = fd.current_state()
    assert {naming.parse_fname(f)[1] for f in state} == set(OBJECTS)  # "restore latest" has all


def test_a_truncated_empty_page_that_comes_right_the_next_time_loses_nothing(moto, proxy, fd, bucket_name):
    def arrange(p):
        p.cut_listing(after_keys=0, times=1, match=after_marker(bucket_name, "k04"))

    inc = full_then_accurate_incremental(fd, moto, proxy, bucket_name, arrange)
    assert inc.status == "T", inc.messages
    assert inc.deleted == []
    assert listed(inc) == set(OBJECTS)
    assert len(proxy.entries(method="GET", match=after_marker(bucket_name, "k04"))) == 2


def test_a_truncated_page_with_a_next_marker_and_no_entries_goes_on_from_that_marker(moto, proxy, fd,
                                                                                    bucket_name):
    """Legal in S3 (a delimiter folds the keys of a page into CommonPrefixes): no <Contents>, a
    NextMarker. Old code ended the bucket there."""
    def arrange(p):
        p.respond(200, body=empty_page(bucket_name, "k04", next_marker="k04a"), times=1, method="GET",
                  match=after_marker(bucket_name, "k04"))

    inc = full_then_accurate_incremental(fd, moto, proxy, bucket_name, arrange)
    assert inc.status == "T", inc.messages
    assert inc.deleted == []
    assert listed(inc) == set(OBJECTS)
    assert len(proxy.entries(method="GET", match=after_marker(bucket_name, "k04a"))) == 1


def test_a_truncated_empty_first_page_fails_only_its_bucket(moto, proxy, fd, bucket_name):
    def arrange(p):
        p.clear(log=False)  # no short first page here: the first page itself says nothing
        p.respond(200, body=empty_page(bucket_name, ""), times=None, method="GET", match=first_page(bucket_name))

    inc = full_then_accurate_incremental(fd, moto, proxy, bucket_name, arrange)
    assert inc.status == "W", inc.messages
    assert inc.deleted == []
    errors = ours(inc, M_ERROR)
    assert any(repr(bucket_name) in e and "listing did not finish" in e for e in errors), inc.messages
