"""Restoring objects to a local directory (``restore ... where=/path``).

Every object lands at ``<where>/@libcloud/<bucket>/<key as named by naming.py>``.  Nothing is
written outside ``where``: the path is rebuilt from the decoded name, never taken from the
catalog text, and no symbolic link on the way is followed.  Data goes to a temporary file in the
target directory and is renamed into place at IO_CLOSE, after its mtime is set, so a failed or
cancelled restore never leaves a half-written object under its real name.  Nor does a backup
whose copy of the object is incomplete: bareos-fd catalogs an object whose read failed with its
full size (real-fd-trace 7), so a copy with fewer bytes than that is dropped with an error
naming it.
"""

import errno
import os
import secrets
import stat

from .. import metadata, naming

REPLACE_ALWAYS, REPLACE_IFNEWER, REPLACE_IFOLDER, REPLACE_NEVER = ord("a"), ord("w"), ord("o"), ord("n")
FILE_MODE = 0o640
DIR_MODE = 0o750


class RestoreRefused(Exception):
    """This object cannot be restored as asked; the message says why."""


class Skip(Exception):
    """The replace policy keeps the existing file."""


class IncompleteCopy(Exception):
    """The backup holds fewer bytes of the object than its size; nothing was restored."""


def original_name(packet):
    """The backup-time file name of a RestorePacket."""
    name = getattr(packet, "original_file_name", None)
    if name:
        return name
    where = packet.where or ""
    ofname = packet.ofname
    if where and ofname.startswith(where):
        rest = ofname[len(where) :]
        return rest if rest.startswith("/") else "/" + rest
    return ofname


class PartFile:
    """Bytes being restored, in a new file of their own until they are complete: created with
    O_EXCL and without following a symbolic link, removed by ``discard``."""

    def __init__(self, directory, name):
        self.path = os.path.join(directory, name)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)

    def write(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def seek(self, offset, whence):
        """Bareos skips the all-zero blocks of a FileSet with sparse=yes: they stay holes."""
        os.lseek(self.fd, offset, whence)

    def size(self):
        """The file's size (not the bytes written: sparse blocks are holes)."""
        return os.fstat(self.fd).st_size

    @property
    def open(self):
        return self.fd >= 0

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def discard(self):
        self.close()
        try:
            os.unlink(self.path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise


def _is_dir_nofollow(path):
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


class RestoreSession:
    """The restore side of one job."""

    def __init__(self, log):
        self.log = log
        self.target = None  # final path of the object being restored
        self.part = None  # the PartFile being written
        self.mtime = None
        self.mode = FILE_MODE
        self.restored = 0
        self.where_refused = False
        self.label = None  # "object 'k' in bucket 'b'", for messages
        self.expected = None  # the object's size in the catalog
        self.placed = None  # the file restored last (its metadata follows: set_xattr)
        self.xattr_refused = None  # why the filesystem keeps no extended attributes, once known

    # -- create_file -----------------------------------------------------------------------
    def plan(self, packet):
        """Decide where the object goes; raises RestoreRefused or Skip."""
        where = packet.where
        if where is None:
            raise RestoreRefused("regexwhere is not supported by this plugin; restore with where=/a/directory")
        if where == "" or not os.path.isabs(where):
            raise RestoreRefused(
                "restoring into the bucket itself (empty where=) is not supported; restore with where=/a/directory"
                if where == "" else "where=%r is not an absolute path" % where
            )
        fname = original_name(packet)
        try:
            bucket, key = naming.parse_fname(fname)
        except naming.BadName as exc:
            raise RestoreRefused("%r is not a name made by this plugin (%s)" % (fname, exc)) from None
        base = os.path.realpath(where)
        os.makedirs(base, mode=DIR_MODE, exist_ok=True)
        segments = naming.restore_segments(bucket, key)
        target = os.path.join(self._make_dirs(base, segments[:-1]), segments[-1])
        if _is_dir_nofollow(target):  # object "a" after "a/b" was restored
            segments = naming.restore_segments(bucket, key, as_file_in_folder=True)
            target = os.path.join(self._make_dirs(base, segments[:-1]), segments[-1])
        self._apply_replace(packet, target)
        self.placed = None
        self.target = target
        self.mtime = packet.statp.st_mtime
        self.mode = FILE_MODE
        self.label = "object %r in bucket %r" % (key, bucket)
        size = packet.statp.st_size
        self.expected = size if 0 <= size < 1 << 63 else None  # 2**64-1: unknown
        return target

    def _make_dirs(self, base, segments):
        """Create the directories below ``base``; never follows a symbolic link.

        A regular file in the way (object ``a``, restored before ``a/b``) moves to its
        folder-object place (``a%obj``) and a directory takes its name.
        """
        path = base
        for segment in segments:
            parent, path = path, os.path.join(path, segment)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, DIR_MODE)
                continue
            if stat.S_ISDIR(info.st_mode):
                continue
            if not stat.S_ISREG(info.st_mode):
                raise RestoreRefused("%r is in the way and is not a directory or regular file" % path)
            pieces = naming.folder_object_pieces(segment)
            destination = parent
            for piece in pieces[:-1]:
                destination = os.path.join(destination, piece)
                if not _is_dir_nofollow(destination):
                    os.mkdir(destination, DIR_MODE)
            os.replace(path, os.path.join(destination, pieces[-1]))
            os.mkdir(path, DIR_MODE)
        return path

    def _apply_replace(self, packet, target):
        try:
            existing = os.lstat(target)
        except FileNotFoundError:
            return
        if not stat.S_ISREG(existing.st_mode):
            raise RestoreRefused("%r exists and is not a regular file" % target)
        policy = packet.replace
        backup_mtime = packet.statp.st_mtime
        if policy == REPLACE_NEVER:
            raise Skip("%s exists (replace=never)" % target)
        if policy == REPLACE_IFNEWER and not backup_mtime > existing.st_mtime:
            raise Skip("%s is not older than the backup (replace=ifnewer)" % target)
        if policy == REPLACE_IFOLDER and not backup_mtime < existing.st_mtime:
            raise Skip("%s is not newer than the backup (replace=ifolder)" % target)

    # -- plugin_io -------------------------------------------------------------------------
    def open(self):
        self.part = PartFile(os.path.dirname(self.target), ".bareos-libcloud-%s.part" % secrets.token_hex(8))

    def write(self, data):
        self.part.write(data)

    def seek(self, offset, whence):
        self.part.seek(offset, whence)

    def set_attributes(self, mtime):
        self.mtime = mtime

    def close(self):
        """Finish the object: mode and mtime, then rename into place.  A copy with fewer bytes
        than the object's size is dropped instead (IncompleteCopy).  More bytes are kept: outside
        the S3 family a large object is cataloged with its listed size, which need not be what
        its download gives (a Swift manifest lists 0 bytes).

        After a failed write the object was already dropped (``abandon``) and named in an
        error; Bareos still calls IO_CLOSE then, which has nothing left to do or report."""
        part = self.part
        if part is None or not part.open:
            return
        held = part.size()
        if self.expected is not None and held < self.expected:
            self.abandon()
            raise IncompleteCopy(
                "%s was not restored: this backup holds %d bytes of it, not %d (reading it failed "
                "during that backup, whose job log names it; restore it from another backup)"
                % (self.label, held, self.expected)
            )
        try:
            os.fchmod(part.fd, self.mode)
            if self.mtime is not None:
                os.utime(part.fd, (self.mtime, self.mtime))
        finally:
            part.close()
        os.replace(part.path, self.target)
        self.part = None
        self.placed = self.target
        self.restored += 1

    def set_xattr(self, name, value):
        """Write one metadata item (metadata.py) as an extended attribute of the restored file.

        Returns a warning's text when the filesystem keeps none (once per job) or refuses this
        one; the file stays restored either way."""
        if self.placed is None or metadata.from_xattr(name, value) is None:
            return None
        name = bytes(name).rstrip(b"\0")
        if self.xattr_refused is not None:
            return None
        try:
            os.setxattr(self.placed, name, metadata.disk_value(value), follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES):
                self.xattr_refused = exc.strerror
                return ("the filesystem below where= keeps no extended attributes (%s): the objects' "
                        "metadata (content type, user metadata, tags) is not written to the restored files"
                        % exc.strerror)
            return "metadata %s of %s was not written: %s" % (name.decode("latin-1"), self.placed, exc.strerror)
        return None

    def end_file(self):
        """Nothing is left behind if IO_CLOSE never came."""
        self.abandon()
        self.placed = None

    def abandon(self):
        """Drop a partial object (write error, cancel, job end)."""
        if self.part is not None:
            part, self.part = self.part, None
            part.discard()
