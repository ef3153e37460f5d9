"""provider=LOCAL (libcloud's driver for a directory of folders): a real driver whose listing
states no Last-Modified, like B2's.  No change can be seen, so every backup saves every object."""

import os
import time

import pytest

from harness import REPO

from bareos_libcloud import naming

def saved(result):
    return {naming.parse_fname(r.fname)[1]: r for r in result.files if r.cataloged and not r.deleted}


@pytest.mark.parametrize("accurate", [False, True])
def test_objects_without_last_modified_are_saved_by_every_job(fd, tmp_path, accurate):
    root = tmp_path / "store"
    (root / "box" / "sub").mkdir(parents=True)
    (root / "box" / "a").write_bytes(b"alpha")
    (root / "box" / "sub" / "b").write_bytes(os.urandom(5000))
    plugin = ("python3:module_path=%s:module_name=bareos-fd-libcloud:provider=LOCAL:key=%s"
              ":buckets_include=box:nb_prefetcher=2" % (REPO, root))
    start = int(time.time())
    full = fd.backup(plugin, accurate=accurate)
    assert full.status == "T", full.messages
    assert {k: r.read_bytes() for k, r in saved(full).items()} == {
        "a": b"alpha", "sub/b": (root / "box" / "sub" / "b").read_bytes()}
    assert all(r.statp["st_mtime"] >= start for r in saved(full).values())  # the job's start, not 1970
    time.sleep(1.1)
    (root / "box" / "a").write_bytes(b"alpha, changed")
    inc = fd.backup(plugin, level="I", accurate=accurate)
    assert inc.status == "T", inc.messages
    assert {k: r.read_bytes() for k, r in saved(inc).items()} == {
        "a": b"alpha, changed", "sub/b": (root / "box" / "sub" / "b").read_bytes()}
