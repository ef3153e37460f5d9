"""Catalog (JSON under workdir) and volumes (one data file per job).

File data is streamed to ``workdir/volumes/job-<id>.vol`` as it is read, and
the catalog keeps only offsets, record sizes and the MD5 (the real catalog
keeps the MD5 of the bytes actually sent: real-fd-trace section 7).
"""

import base64
import hashlib
import json
import os
import struct
from dataclasses import asdict, dataclass, field

STAT_FIELDS = ("st_dev", "st_ino", "st_mode", "st_nlink", "st_uid", "st_gid",
               "st_rdev", "st_size", "st_atime", "st_mtime", "st_ctime",
               "st_blksize", "st_blocks")


@dataclass
class FileRecord:
    """One file declared by the plugin in a job (and maybe cataloged)."""

    fname: str
    type: int
    statp: dict
    link: str = ""
    size: int = 0                 # bytes of data stored on the volume
    md5: str = hashlib.md5(b"").hexdigest()
    jobid: int = 0
    file_index: int = 0
    plugin: str = ""              # full backup-time plugin string
    volume: str | None = None     # path relative to workdir
    offset: int = 0
    records: list = field(default_factory=list)   # [[size, repeat], ...]
    delta_seq: int = 0
    deleted: bool = False
    read_error: bool = False
    cataloged: bool = False       # False for FT_NOCHG and types not saved
    acl: str | None = None        # base64 of AclPacket.content
    xattrs: list = field(default_factory=list)    # [[b64 name, b64 value]]
    sparse: bool = False          # records carry their file offset (FileSet sparse=yes)
    workdir: str = field(default="", repr=False, compare=False)

    @property
    def md5_base64(self):
        """The catalog form: base64 without padding ("" when the FileSet had no signature)."""
        if not self.md5:
            return ""
        return base64.b64encode(bytes.fromhex(self.md5)).decode().rstrip("=")

    def record_sizes(self):
        """Sizes of the data records, i.e. the status of each IO_READ."""
        for size, repeat in self.records:
            for _ in range(repeat):
                yield size

    def iter_records(self):
        """Yield the stored data records as bytes."""
        if not self.volume or not self.size:
            return
        with open(os.path.join(self.workdir, self.volume), "rb") as handle:
            handle.seek(self.offset)
            for size in self.record_sizes():
                yield handle.read(size)

    def read_bytes(self):
        """The file's data as a restore rebuilds it: with sparse records, the skipped all-zero
        blocks are zeros again."""
        if not self.sparse:
            return b"".join(self.iter_records())
        out = bytearray()
        for record in self.iter_records():
            offset, data = struct.unpack(">Q", record[:SPARSE_HEADER])[0], record[SPARSE_HEADER:]
            out.extend(bytes(max(0, offset - len(out))))
            out[offset:offset + len(data)] = data
        return bytes(out)

    def to_json(self):
        data = asdict(self)
        data.pop("workdir")
        return data

    @classmethod
    def from_json(cls, data, workdir):
        return cls(workdir=workdir, **data)


#: Bytes of the file offset in front of each sparse record (OFFSET_FADDR_SIZE).
SPARSE_HEADER = 8


def stat_to_dict(statp):
    return {name: getattr(statp, name) for name in STAT_FIELDS}


class VolumeWriter:
    """Append-only data file of one job."""

    def __init__(self, workdir, jobid, signature="MD5"):
        if signature not in ("MD5", None):
            raise ValueError("signature must be 'MD5' or None")
        self.signature = signature
        self.workdir = workdir
        self.relpath = os.path.join("volumes", "job-%d.vol" % jobid)
        os.makedirs(os.path.join(workdir, "volumes"), exist_ok=True)
        self.handle = open(os.path.join(workdir, self.relpath), "wb")
        self.position = 0

    def start(self, record):
        record.volume = self.relpath
        record.offset = self.position
        record.workdir = self.workdir
        self._md5 = hashlib.md5() if self.signature else None

    def write(self, record, data, offset=None):
        """Store one data record; with ``offset`` (sparse=yes) it is prefixed with the block's
        file offset, 8 bytes big-endian, as in Bareos's STREAM_SPARSE_DATA."""
        if self._md5 is not None:
            self._md5.update(data)
        if offset is not None:
            record.sparse = True
            data = struct.pack(">Q", offset) + data
        self.handle.write(data)
        self.position += len(data)
        record.size += len(data)
        if record.records and record.records[-1][0] == len(data):
            record.records[-1][1] += 1
        else:
            record.records.append([len(data), 1])

    def finish(self, record):
        record.md5 = self._md5.hexdigest() if self._md5 is not None else ""

    def close(self):
        self.handle.close()


class Catalog:
    """Jobs and their file records, persisted as workdir/catalog.json."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.path = os.path.join(workdir, "catalog.json")
        self.jobs = []
        self.next_jobid = 1
        if os.path.exists(self.path):
            self._load()

    def _load(self):
        with open(self.path, encoding="utf-8") as handle:
            data = json.load(handle)
        self.next_jobid = data["next_jobid"]
        for job in data["jobs"]:
            job["files"] = [FileRecord.from_json(f, self.workdir) for f in job["files"]]
            self.jobs.append(job)

    def save(self):
        data = {"next_jobid": self.next_jobid, "jobs": [
            dict(job, files=[f.to_json() for f in job["files"]]) for job in self.jobs]}
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, self.path)

    def new_jobid(self):
        jobid = self.next_jobid
        self.next_jobid += 1
        return jobid

    def add_job(self, job):
        self.jobs.append(job)
        self.save()

    def job(self, jobid):
        for job in self.jobs:
            if job["jobid"] == jobid:
                return job
        raise KeyError("no job %d in the catalog" % jobid)

    def good_backups(self, job_name):
        """Backups with JobStatus T or W, oldest first."""
        return [j for j in self.jobs if j["type"] == "B" and j["job_name"] == job_name
                and j["status"] in ("T", "W")]

    def last_full(self, job_name):
        fulls = [j for j in self.good_backups(job_name) if j["level"] == "F"]
        return fulls[-1] if fulls else None

    def since_time(self, job_name, level):
        """bVarSinceTime: start of the last good job (I) or last Full (D)."""
        if level == "F":
            return 0
        jobs = self.good_backups(job_name)
        if level == "D":
            jobs = [j for j in jobs if j["level"] == "F"]
        return jobs[-1]["start_time"] if jobs else 0

    def accurate_chain(self, job_name, level="I"):
        """The jobs an accurate job compares against (cats/sql_get.cc
        AccurateGetJobids): the last Full; for I also the last Differential
        after it (with files) and every Incremental after that."""
        jobs = self.good_backups(job_name)
        fulls = [i for i, j in enumerate(jobs) if j["level"] == "F"]
        if not fulls:
            return []
        chain = [jobs[fulls[-1]]]
        if level == "D":
            return chain
        later = jobs[fulls[-1] + 1:]
        diffs = [i for i, j in enumerate(later) if j["level"] == "D" and j["files"]]
        if diffs:
            chain.append(later[diffs[-1]])
            later = later[diffs[-1] + 1:]
        chain.extend(j for j in later if j["level"] == "I")
        return chain

    @staticmethod
    def merge(jobs):
        """fname -> FileRecord; the last record wins, deletions remove."""
        state = {}
        for job in jobs:
            for record in job["files"]:
                if record.deleted:
                    state.pop(record.fname, None)
                else:
                    state[record.fname] = record
        return state
