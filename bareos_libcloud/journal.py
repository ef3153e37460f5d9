"""The retry journal: objects a backup could not save, saved again by later backups.

Bareos cannot be told "this file is incomplete": after a failed read it still catalogs the file
with its full size (real-fd-trace section 7), and the next incremental would find it
unchanged.  So every object that was not saved is appended (and fsynced) to a small journal in
the daemon's working directory, one per Job name, with the level of the job it failed in.  Later
backups of that job save those objects whatever their Last-Modified (plugin.py has Bareos skip
its change check for them), until one whose level *covers* the failed job saved the object:

* a Full covers every job;
* a Differential covers Differentials and Incrementals (every later Differential lists the
  object again as changed since the Full, or finds it in the journal);
* an Incremental covers Incrementals only.

Otherwise a "restore latest" (Full + newest Differential + later Incrementals) could still pick the
failed copy: an object that failed in a Full and was saved by an Incremental is skipped by the
next Differential, which is based on the Full.  An object that failed at several levels keeps
the highest.  Entries of objects that no longer exist are dropped.

Two jobs of one Job name may run at once: every change is made under an exclusive lock of the
journal, and the closing rewrite keeps what the other job appended meanwhile.
"""

import fcntl
import hashlib
import json
import os
import re

_UNIQUE_SUFFIX = re.compile(r"\.\d{4}-\d{2}-\d{2}_\d{2}\.\d{2}\.\d{2}_\d+$")
_RANK = {"I": 1, "D": 2, "F": 3}


def job_key(job_name):
    """The job's name without Bareos's unique ``.YYYY-MM-DD_HH.MM.SS_NN`` suffix."""
    return _UNIQUE_SUFFIX.sub("", job_name or "")


def covers(saving_level, failed_level):
    """Whether a job at ``saving_level`` that saved an object resolves a failure at ``failed_level``."""
    return _RANK.get(saving_level, 0) >= _RANK.get(failed_level, 3)


def _higher(a, b):
    return a if _RANK.get(a, 3) >= _RANK.get(b, 3) else b


class Journal:
    """Objects to save again, kept in ``<workdir>/bareos-libcloud-<job>-<hash>.journal``.

    ``level`` is this job's level (F, D or I); ``job_id`` tells this job's lines from another's.
    """

    def __init__(self, workdir, job_name, level, job_id=""):
        key = job_key(job_name)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:80]
        digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
        self.path = os.path.join(workdir, "bareos-libcloud-%s-%s.journal" % (safe, digest))
        self.level = level
        self.job_id = job_id or job_name or ""
        self.pending = {}  # fname -> entry, from earlier jobs
        self.added = {}  # fname -> entry, failed in this job
        self.resolved = set()  # saved by this job at a level that covers their failure
        self.gone = set()  # no longer exist (or were deleted when read)

    # -- reading -----------------------------------------------------------------------------
    def load(self):
        """Read the entries of earlier jobs (a missing or damaged journal counts as empty);
        returns the names of the objects to save again."""
        self.pending = self._read()
        return set(self.pending)

    def _read(self):
        entries = {}
        try:
            with open(self.path, encoding="utf-8") as handle:
                for line in handle:
                    try:
                        entry = json.loads(line)
                        fname = entry["fname"]
                    except (ValueError, KeyError, TypeError):
                        continue
                    if isinstance(fname, str):
                        old = entries.get(fname)
                        entry["level"] = _higher(entry.get("level", "F"), old["level"]) if old else entry.get("level", "F")
                        entries[fname] = entry
        except FileNotFoundError:
            pass
        return entries

    # -- this job's outcomes -----------------------------------------------------------------
    def add(self, fname, reason):
        """Record an object that was not saved, durably, at once."""
        earlier = self.pending.get(fname) or self.added.get(fname)
        level = _higher(self.level, earlier["level"]) if earlier else self.level
        entry = {"fname": fname, "reason": reason, "level": level, "job": self.job_id}
        self.added[fname] = entry
        self.resolved.discard(fname)
        with self._locked():
            self._append([entry])

    def saved(self, fname):
        """The object was saved in full in this job."""
        entry = self.added.get(fname) or self.pending.get(fname)
        if entry is not None and covers(self.level, entry["level"]):
            self.resolved.add(fname)
            self.added.pop(fname, None)

    def vanished(self, fname):
        """The object no longer exists: nothing is left to save again."""
        if fname in self.pending or fname in self.added:
            self.gone.add(fname)
            self.added.pop(fname, None)

    def close(self, job_ok=True):
        """Rewrite the journal without the entries this job settled.

        Only a job that went well settles entries (Bareos does not build on a failed or
        cancelled one); what it could not save stays either way.
        """
        settled = (self.resolved | self.gone) if job_ok else set()
        if not settled:
            return
        with self._locked():
            current = self._read()
            for fname in settled:
                entry = current.get(fname)
                # Kept if another job recorded it again since this one read the journal.
                if entry is not None and entry.get("job") in (self.pending.get(fname, {}).get("job"), self.job_id):
                    del current[fname]
            self._rewrite(current.values())

    # -- the file ----------------------------------------------------------------------------
    def _locked(self):
        return _FileLock(self.path + ".lock")

    def _append(self, entries):
        with open(self.path, "a", encoding="utf-8") as handle:
            for entry in entries:
                handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _rewrite(self, entries):
        entries = list(entries)
        if not entries:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            return
        temp = self.path + ".new"
        with open(temp, "w", encoding="utf-8") as handle:
            for entry in entries:
                handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)


class _FileLock:
    """An exclusive ``flock`` on a lock file beside the journal, for a ``with`` block."""

    def __init__(self, path):
        self.path = path
        self.handle = None

    def __enter__(self):
        self.handle = open(self.path, "a")
        fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
        self.handle.close()
