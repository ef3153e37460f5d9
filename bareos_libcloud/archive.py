"""Archived objects: the restore requests of ``archived=request``, and the names the job keeps.

An object in an archive storage class (S3 GLACIER, DEEP_ARCHIVE) cannot be read by a GET until a
restore request has made a temporary copy, which takes minutes to hours.  The lister asks for
that copy (S3 ``POST ?restore``) and records each request here; a later job finds the copy
readable (the HEAD of the object says ``x-amz-restore: ongoing-request="false"``) and saves the
object then, whatever its Last-Modified says.

The state is a file beside the retry journal, ``<workdir>/bareos-libcloud-<job>-<hash>.restores``,
one per Job name, kept exactly as the journal is (journal.py: JSON lines, appended and fsynced
under an exclusive lock, rewritten at a job's end keeping what another job of the same name
added meanwhile).  Both sides write it: the lister appends the requests it sends; the job, at its
end, drops the entries of objects saved at a level that covers the job that asked for them (the
journal's rule, for the same reason: "restore latest" must find the object) and of objects no
longer listed.  Standard library only.
"""

import array
import bisect
import hashlib
import time

from .journal import Journal, _higher

_SUFFIX = ".restores"


class RestoreState(Journal):
    """The restore requests of one Job name (see the module's description)."""

    @classmethod
    def beside(cls, journal):
        """The state of the job whose retry journal is ``journal``."""
        return cls.at(journal.path[: -len(".journal")] + _SUFFIX, journal.level, journal.job_id)

    @classmethod
    def at(cls, path, level, job_id):
        state = cls.__new__(cls)
        Journal.__init__(state, "", "", level, job_id)
        state.path = path
        return state

    def where(self):
        """What the lister needs to open the same state: ``(path, level, job_id)``."""
        return (self.path, self.level, self.job_id)

    def requested(self, fnames, tier, days):
        """Record restore requests just sent (one fsync for all of them)."""
        if not fnames:
            return
        now = int(time.time())
        entries = []
        for fname in fnames:
            earlier = self.pending.get(fname)
            level = _higher(self.level, earlier["level"]) if earlier else self.level
            entry = {"fname": fname, "reason": "restore requested", "level": level, "job": self.job_id,
                     "requested": now, "tier": tier, "days": days}
            self.pending[fname] = entry
            entries.append(entry)
        with self._locked():
            self._append(entries)


# -- names kept in accurate mode -----------------------------------------------------------------

def name_hash(fname):
    """A 64-bit hash of a backup name (the same in the lister and the job)."""
    return int.from_bytes(hashlib.blake2b(fname.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def pack(hashes):
    """Sorted hashes as bytes, for the pipe (the job keeps them as they come: 8 bytes a name)."""
    return array.array("Q", sorted(hashes)).tobytes()


class KeptNames:
    """Names the job did not declare to Bareos but must not record as deleted (accurate mode):
    archived objects that exist.  Kept as sorted 64-bit hashes, 8 bytes a name."""

    def __init__(self):
        self.parts = []

    def add(self, packed):
        if packed:
            part = array.array("Q")
            part.frombytes(packed)
            self.parts.append(part)

    def __contains__(self, fname):
        value = name_hash(fname)
        for part in self.parts:
            index = bisect.bisect_left(part, value)
            if index < len(part) and part[index] == value:
                return True
        return False

    def __len__(self):
        return sum(len(part) for part in self.parts)
