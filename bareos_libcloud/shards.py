"""Which shard (``shard=K/N``) an object belongs to: the lister filters by it, the job judges
journal entries by it.  Standard library only (both sides import it).

Two ways to shard (``shard_by``):

* ``hash`` (the default): each object by the hash of its bucket and key.  Every shard lists the
  whole bucket (or prefix) and keeps its part.
* ``prefix``: each top-level prefix (what a listing with delimiter ``/`` folds into one
  CommonPrefix: ``prefix`` plus the key up to and including the next ``/``) by the hash of its
  bucket and name; the keys at the top level itself (no ``/`` after ``prefix``) belong to shard 1.
  Every shard lists the top level with a delimiter, then only its own prefixes.
"""

import hashlib

DELIMITER = "/"


def shard_of(bucket, key, count):
    """The shard (1..count) of an object: stable across jobs, hosts and Python versions."""
    digest = hashlib.sha1(("%s\0%s" % (bucket, key)).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def top_level(key, prefix=""):
    """The top-level prefix of ``key`` below ``prefix`` (ending in ``/``), or None for a key at
    the top level itself.  ``key`` begins with ``prefix``."""
    cut = key.find(DELIMITER, len(prefix))
    return key[: cut + 1] if cut >= 0 else None


def prefix_shard(bucket, common_prefix, count):
    """The shard of a top-level prefix (``shard_by=prefix``); None (top-level keys) is shard 1."""
    return 1 if common_prefix is None else shard_of(bucket, common_prefix, count)


def in_shard(bucket, key, shard, by=None, prefix=""):
    """Whether an object (of the line's ``prefix``) belongs to ``shard`` (``(k, n)`` or None)."""
    if not shard:
        return True
    if by == "prefix":
        return prefix_shard(bucket, top_level(key, prefix), shard[1]) == shard[0]
    return shard_of(bucket, key, shard[1]) == shard[0]
