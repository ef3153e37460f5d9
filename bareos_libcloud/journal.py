"""The retry journal: objects a backup could not save, saved again by the next backup.

Bareos cannot be told "this file is incomplete": after a failed read it still catalogs the file
with its full size (real-fd-trace.md section 7), and the next accurate incremental would find it
unchanged.  So every object that was not saved is appended (and fsynced) to a small journal in
the daemon's working directory, one per job name.  The next backup of that job treats those
objects as changed (and gives them a fresh ctime, which Bareos's accurate check compares), and
drops each entry once the object is saved in full.
"""

import hashlib
import json
import os
import re

_UNIQUE_SUFFIX = re.compile(r"\.\d{4}-\d{2}-\d{2}_\d{2}\.\d{2}\.\d{2}_\d+$")


def job_key(job_name):
    """The job's name without Bareos's unique ``.YYYY-MM-DD_HH.MM.SS_NN`` suffix."""
    return _UNIQUE_SUFFIX.sub("", job_name or "")


class Journal:
    """Names of objects to save again, kept in ``<workdir>/bareos-libcloud-<job>.journal``."""

    def __init__(self, workdir, job_name):
        key = job_key(job_name)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:80]
        digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
        self.path = os.path.join(workdir, "bareos-libcloud-%s-%s.journal" % (safe, digest))
        self.pending = {}  # fname -> reason, from earlier jobs
        self.added = {}  # fname -> reason, this job
        self.done = set()

    def load(self):
        """Read the entries of earlier jobs; a missing or damaged journal counts as empty."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                for line in handle:
                    try:
                        entry = json.loads(line)
                        self.pending[entry["fname"]] = entry.get("reason", "")
                    except (ValueError, KeyError, TypeError):
                        continue
        except FileNotFoundError:
            pass
        return set(self.pending)

    def add(self, fname, reason):
        """Record an object that was not saved, durably, at once."""
        self.added[fname] = reason
        self.done.discard(fname)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"fname": fname, "reason": reason}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def saved(self, fname):
        """The object was saved in full in this job."""
        if fname in self.pending or fname in self.added:
            self.done.add(fname)
            self.added.pop(fname, None)

    def close(self):
        """Rewrite the journal without the objects saved in this job."""
        if not self.done and not self.added:
            return
        remaining = {f: r for f, r in self.pending.items() if f not in self.done}
        remaining.update(self.added)
        if not remaining:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            return
        temp = self.path + ".new"
        with open(temp, "w", encoding="utf-8") as handle:
            for fname, reason in remaining.items():
                handle.write(json.dumps({"fname": fname, "reason": reason}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)
