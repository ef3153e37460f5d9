"""BareosFdPluginLibcloud: the Bareos callbacks of one job, mapped onto backup and restore.

bareos-fd calls every method on the job thread except ``handle_plugin_event(CancelCommand)``,
which arrives on another thread while the job thread may be inside ``plugin_io``; that one only
sets an event.  No exception leaves a callback: an unexpected one becomes one M_FATAL message
with secrets masked, and the callback returns an error code.
"""

import errno
import functools
import stat
import threading
import time

from .. import metadata, naming
from ..journal import Journal
from ..options import OptionError, is_secret_option, split_plugin_string
from .backup import BackupSession, ChangePolicy, SetupFailed
from .helpers import python_executable, stop_servers
from .joblog import JobLog, plural
from .lines import PluginLines, store_of
from .prefetch import VANISHED, JobCancelled, PoolFailed
from .restore import IncompleteCopy, RestoreRefused, RestoreSession, Skip
from .restore_options import RestoreOptions
from .upload import BucketRestore

FILE_MODE = stat.S_IFREG | 0o640
FO_XATTR = 27  # savepkt.flags bit: the FileSet saves extended attributes (xattrsupport, default yes)


def _guarded(default_attr, on_error=None):
    """Turn an unexpected exception into one fatal job message and ``bRC_<default_attr>``;
    ``on_error(self, *args)`` first makes the answer safe (e.g. an I/O error, not an EOF)."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args):
            try:
                return method(self, *args)
            except Exception as exc:  # noqa: BLE001 - reported, never raised into bareos-fd
                self.failed = True
                self.log.exception(method.__name__, exc)
                if on_error is not None:
                    return on_error(self, *args)
                return getattr(self.fd, default_attr)

        return wrapper

    return decorate


def _io_failed(self, iop):
    """bareos-fd reads IOP.status only: 0 would be a silent EOF (a short file cataloged whole)."""
    iop.status, iop.io_errno = -1, errno.EIO
    return self.fd.bRC_Error


def _keep_old_copy(self, fname):
    """Anything but bRC_Seen would record the object as deleted."""
    return self.fd.bRC_Seen


class BareosFdPluginLibcloud:
    """The plugin object of one job; ``bareosfd`` is passed in by the entrypoint."""

    def __init__(self, bareosfd, plugindef):
        self.fd = bareosfd
        self.log = JobLog(bareosfd)
        self.lines = PluginLines()
        self.fileset_done = False
        self.restore_options = RestoreOptions()
        self.warned = set()
        self.failed = False
        self.cancelled = threading.Event()
        # Restores and Verify jobs read no object store: options are parsed without reading
        # credentials_file (docs/verify.md).
        self.is_restore = chr(bareosfd.GetValue(bareosfd.bVarType)) in "RV"
        self.sessions_started = False
        self.backup_job_started = False
        self.journal = None
        self.check_changes = True  # bVarCheckChanges as last set (bareos-fd's default: True)
        self.item = None
        self.reader = None
        self.item_read = False
        self.restore = None  # the target of the file being restored: local_restore or bucket_restore
        self.local_restore = None
        self.bucket_restore = None
        self.xattrs = None  # get_xattr: the metadata items of the object not yet given to Bareos
        self.xattr_checked = False
        self.job_start = 0
        bareosfd.RegisterEvents(
            [
                bareosfd.bEventJobEnd,
                bareosfd.bEventEndBackupJob,
                bareosfd.bEventStartBackupJob,
                bareosfd.bEventEndRestoreJob,
                bareosfd.bEventEndFileSet,
                bareosfd.bEventCancelCommand,
            ]
        )

    # -- options -----------------------------------------------------------------------------
    def parse_plugin_definition(self, plugindef):
        """One line's options: at the FileSet command (each line is recorded), at the backup
        or estimate command (that line is the one saved next), and per restored file."""
        if self.failed:
            return self.fd.bRC_Error
        try:
            if self.is_restore:
                self.restore_options.parse(plugindef)
            elif not self.fileset_done:
                self.lines.add(plugindef, need_remote=True)
            else:
                self.lines.select(plugindef, need_remote=True)
        except OptionError as exc:
            self.failed = True
            self.log.configure(self.lines.secrets() + _raw_secrets(plugindef), False)
            where = " of Plugin line %d" % (len(self.lines) + 1) if not self.fileset_done and self.lines else ""
            self.log.fatal("bad plugin options%s: %s" % (where, exc))
            return self.fd.bRC_Error
        self._configure_log()
        return self.fd.bRC_OK

    def _configure_log(self):
        every = [line.opts for line in self.lines] or self.restore_options.all()
        self.log.configure(tuple(s for o in every for s in o.secrets), any(o.debug for o in every))
        for opts in every:
            for text in opts.warnings:
                if text not in self.warned:
                    self.warned.add(text)
                    self.log.warning(text)

    # -- events ------------------------------------------------------------------------------
    def handle_plugin_event(self, event):
        fd = self.fd
        if event == fd.bEventCancelCommand:
            self.cancelled.set()  # another thread: no bareosfd calls here (nor pipe writes)
            for line in self.lines:
                if line.session is not None:
                    line.session.abort()
            return fd.bRC_OK
        return self._handle_event(event)

    @_guarded("bRC_OK")
    def _handle_event(self, event):
        fd = self.fd
        if event == fd.bEventEndFileSet:
            self.fileset_done = True
        elif event == fd.bEventStartBackupJob:
            self.backup_job_started = True
            self._start_backup()
        elif event == fd.bEventEndBackupJob:
            self._end_backup()
        elif event == fd.bEventEndRestoreJob:
            self._end_restore()
        elif event == fd.bEventJobEnd:
            self._end_backup()
            self._end_restore()
        return fd.bRC_OK

    def _start_backup(self):
        """Start every line's listing (at StartBackupJob, or at the first file of an estimate)."""
        if self.sessions_started or self.failed:
            return
        self.sessions_started = True
        if not len(self.lines):
            self.failed = True
            self.log.fatal("the plugin received no options")
            return
        fd = self.fd
        level = chr(fd.GetValue(fd.bVarLevel))
        since = fd.GetValue(fd.bVarSinceTime) or 0 if level in "ID" else 0
        accurate = bool(fd.GetValue(fd.bVarAccurate)) and level in "ID"
        estimate = not self.backup_job_started
        self.log.debug("level %s since %s accurate %s estimate %s lines %d"
                       % (level, since, accurate, estimate, len(self.lines)))
        self.job_start = int(time.time())
        if not estimate:
            workdir = fd.GetValue(fd.bVarWorkingDir)
            if workdir:
                self.journal = Journal(workdir, fd.GetValue(fd.bVarJobName), level if level in "FID" else "F")
                forced = self.journal.load()
                if forced:
                    self.log.info("%s an earlier backup could not save %s saved again"
                                  % (plural(len(forced), "object"), "is" if len(forced) == 1 else "are"))
            else:
                self.log.warning("the daemon has no working directory: objects that fail are not retried")
        for line in self.lines:
            opts = line.opts
            policy = ChangePolicy(since, accurate, opts.prefetch_size, estimate, opts.incremental_margin)
            line.session = BackupSession(opts, self.log, policy, python_executable(opts.python), self.cancelled,
                                         self.journal)
        try:
            for line in self.lines:
                try:
                    line.session.start()
                except SetupFailed as exc:
                    raise SetupFailed(self._name_line(line, str(exc))) from None
            conflict = self.lines.conflict()
            if conflict:
                raise SetupFailed(conflict)
        except SetupFailed as exc:
            self.failed = True
            self.log.fatal(str(exc))
            self._close_sessions()
        except JobCancelled:
            self.failed = True
            self._close_sessions()
        if self.failed and estimate:
            stop_servers()  # a failed estimate gets no JobEnd event (only a backup gets EndBackupJob)

    def _name_line(self, line, text):
        return "%s: %s" % (line.describe(), text) if len(self.lines) > 1 else text

    def _close_sessions(self):
        for line in self.lines:
            if line.session is not None:
                line.session.close()

    def _end_line(self, line):
        """The line's objects are done: end its helpers and account for it in the job log."""
        if line.ended or line.session is None:
            return
        line.ended = True
        session = line.session
        if self.item is not None and self.lines.current is line:
            session.done_with(self.item)
            self.item = None
        session.close()
        stats = session.stats
        if self.failed and not stats.listed:
            return
        self.log.info(self._name_line(line, session.summary()))
        if session.throttled():
            faults = session.faults
            self.log.warning(self._name_line(line, "the object store failed %s and broke %s: it may be "
                                             "overloaded or throttling (debug=yes shows each)"
                                             % (plural(faults.retried, "request"), plural(faults.resumed, "transfer"))))
        if self.failed or self.cancelled.is_set():
            return
        if session.listing_done and not stats.listed and not session.listing_failed:
            hint = " (keys rarely begin with '/')" if (line.opts.prefix or "").startswith("/") else ""
            self.log.error("%s selected no object at all: nothing of it is in this backup; check "
                           "buckets_include, buckets_exclude and prefix%s" % (line.describe(), hint))
        if stats.failed and line.opts.fail_on_error:
            self.failed = True
            self.log.fatal(self._name_line(line, "%s could not be saved and fail_on_error is set"
                                           % plural(stats.failed, "object")))

    def _end_backup(self):
        if not self.sessions_started:
            return
        self.sessions_started = False
        for line in self.lines:
            if line.session is None:
                continue
            if not line.ended and not line.session.listing_done and not self.failed \
                    and not self.cancelled.is_set():
                self.log.error("%s was not backed up: bareos-fd never asked for its objects" % line.describe())
            self._end_line(line)
        if self.journal is not None:
            status = chr(self.fd.GetValue(self.fd.bVarJobStatus) or ord("T"))
            job_ok = not self.failed and status not in "AEef"
            self.journal.close(job_ok=job_ok)
            for line in self.lines:
                if line.session is not None:
                    line.session.end_job(job_ok)  # archived=request: settles its restore requests
            self.journal = None
        stop_servers()

    # -- backup ------------------------------------------------------------------------------
    def _session(self):
        line = self.lines.current
        return line.session if line is not None and not line.ended else None

    @property
    def backup(self):
        """The BackupSession being saved now (or the first line's before any is), or None."""
        line = self.lines.current or next(iter(self.lines), None)
        return line.session if line is not None else None

    @_guarded("bRC_Error")
    def start_backup_file(self, savepkt):
        fd = self.fd
        if not self.sessions_started and not self.failed:
            self._start_backup()
        line = self.lines.current
        backup = self._session()
        if self.failed or backup is None or self.cancelled.is_set():
            return fd.bRC_Stop
        try:
            item = backup.next_object()
        except (JobCancelled, PoolFailed) as exc:
            if isinstance(exc, PoolFailed):
                self.failed = True
                self.log.fatal(self._name_line(line, str(exc)))
            return fd.bRC_Stop
        if item is None:
            self._end_line(line)
            return fd.bRC_Stop
        self.item, self.reader, self.item_read = item, None, False
        self.xattrs = None
        if not self.xattr_checked:  # at the first object: not a test per object
            self.xattr_checked = True
            if not _bit(savepkt.flags, FO_XATTR):
                self.log.warning("the FileSet saves no extended attributes (xattrsupport = no): the objects' "
                                 "metadata (content type, user metadata, tags) is not in this backup")
        mtime = item.mtime if item.mtime is not None else self.job_start
        statp = fd.StatPacket()
        statp.st_mode = FILE_MODE
        statp.st_nlink = 1
        statp.st_uid = statp.st_gid = 0
        statp.st_size = item.size
        statp.st_atime = statp.st_mtime = statp.st_ctime = mtime
        savepkt.statp = statp
        savepkt.fname = item.fname
        savepkt.type = fd.FT_REG
        savepkt.no_read = False
        policy = backup.policy
        if policy.since and not policy.accurate:
            savepkt.save_time = policy.since  # bareos-fd's own check uses the margin too
        # Saved whatever Bareos's change check says: journaled objects (their cataloged copy may
        # be short), and objects whose store states no Last-Modified (no change can be seen).
        self._check_changes(not (item.forced or item.mtime is None))
        self.log.debug("%s %s size %d mtime %d" % (item.plan, item.fname, item.size, mtime))
        return fd.bRC_OK

    def _check_changes(self, wanted):
        """Set bVarCheckChanges only when it changes (it holds for every later file)."""
        if wanted != self.check_changes:
            self.fd.SetValue(self.fd.bVarCheckChanges, wanted)
            self.check_changes = wanted

    @_guarded("bRC_Error")
    def end_backup_file(self):
        backup, item = self._session(), self.item
        if item is not None and backup is not None:
            if not self.item_read and not backup.policy.estimate:  # accurate: Bareos found it unchanged
                backup.stats.unchanged += 1
            backup.done_with(item)
            self.item = self.reader = None
            stats = backup.stats
            interval = self.lines.current.opts.progress_interval
            if interval and stats.done >= (backup.progress_next or interval):
                self.log.info("progress: " + self._name_line(self.lines.current, backup.summary()))
                backup.progress_next = stats.done + interval
        return self.fd.bRC_More

    @_guarded("bRC_Seen", on_error=_keep_old_copy)
    def check_file(self, fname):
        """Accurate mode: keep (bRC_Seen) what this job could not judge deleted."""
        fd = self.fd
        sessions = [line.session for line in self.lines if line.session is not None]
        if not sessions or not fname.startswith(naming.PREFIX):
            return fd.bRC_OK
        if any(session.keeps(fname) for session in sessions):  # failed, or archived
            return fd.bRC_Seen
        try:
            bucket, _ = naming.parse_fname(fname)
        except naming.BadName:
            return fd.bRC_OK
        for session in sessions:
            if bucket in session.buckets and bucket not in session.complete_buckets:
                return fd.bRC_Seen  # its listing did not finish: absence proves nothing
        return fd.bRC_OK

    # -- IO ----------------------------------------------------------------------------------
    @_guarded("bRC_Error", on_error=_io_failed)
    def plugin_io(self, iop):
        fd = self.fd
        if self.restore is not None:
            return self._restore_io(iop)
        if iop.func == fd.IO_OPEN:
            return self._backup_open(iop)
        if iop.func == fd.IO_READ:
            return self._backup_read(iop)
        if iop.func == fd.IO_CLOSE:
            if self.reader is not None:
                self.reader.close()
            self.reader = None
            return fd.bRC_OK
        iop.status = -1
        iop.io_errno = errno.EINVAL
        return fd.bRC_Error

    def _backup_open(self, iop):
        fd, item, backup = self.fd, self.item, self._session()
        self.item_read = True
        if item is None or backup is None or backup.pool is None:
            iop.status, iop.io_errno = -1, errno.EBADF
            return fd.bRC_Error
        try:
            if item.download is None and not backup.open_on_demand(item):
                download = item.download
                if download.state == VANISHED:
                    backup.vanished(item)
                else:
                    backup.not_saved(item, download.error or "the download failed")
                iop.status, iop.io_errno = -1, errno.EIO
                return fd.bRC_Error
        except (JobCancelled, PoolFailed):
            iop.status, iop.io_errno = -1, errno.EINTR
            return fd.bRC_Error
        self.reader = backup.reader(item)
        iop.status = 0
        return fd.bRC_OK

    def _backup_read(self, iop):
        fd, reader, backup = self.fd, self.reader, self._session()
        if reader is None or backup is None:
            iop.status, iop.io_errno = -1, errno.EBADF
            return fd.bRC_Error
        count = iop.count
        if self.item.size - reader.sent == count > 1:
            # Never a full read that ends the object: with sparse=yes, Bareos's parallel read
            # pipeline (Maximum Workers Per Job, default 2) drops a full all-zero block even at
            # the end of a file (backup.cc SendPlainData), and the restore would be short.
            count -= 1
        try:
            piece = reader.read(count)
        except (JobCancelled, PoolFailed):
            piece = None
        if piece is None:
            if not self.cancelled.is_set():
                backup.not_saved(self.item, self.item.download.error or "the download broke")
            iop.status, iop.io_errno = -1, errno.EIO
            return fd.bRC_Error
        iop.buf = piece
        iop.status = len(piece)
        if not piece:
            backup.saved(self.item, reader.sent)
        return fd.bRC_OK

    # -- restore -----------------------------------------------------------------------------
    @_guarded("bRC_OK")
    def start_restore_file(self, cmd):
        found = self.restore_options.start_file(cmd)
        if found:
            self.log.debug("the restore's plugin options: %s" % found)
        return self.fd.bRC_OK

    def _target(self, opts):
        """The restore target for these options (made at its first file)."""
        if opts.restore_to != "bucket":
            if self.local_restore is None:
                self.local_restore = RestoreSession(self.log)
            return self.local_restore
        if self.bucket_restore is None:
            where = self.fd.GetValue(self.fd.bVarWhere) or ""
            spool = where if where.startswith("/") else self.fd.GetValue(self.fd.bVarWorkingDir)
            self.bucket_restore = BucketRestore(self.log, python_executable(opts.python), self.cancelled, spool)
        return self.bucket_restore

    @_guarded("bRC_Error")
    def create_file(self, restorepkt):
        fd = self.fd
        try:
            known = len(self.restore_options.checked)
            opts = self.restore_options.current()
            if len(self.restore_options.checked) != known:
                self._configure_log()  # the secrets and debug setting of options given at restore
        except OptionError as exc:
            self.failed = True
            self.log.fatal("bad plugin options for the restore: %s" % exc)
            restorepkt.create_status = fd.CF_ERROR
            return fd.bRC_Error
        self.restore = self._target(opts)
        try:
            if self.restore is self.bucket_restore:
                target = self.restore.plan(restorepkt, opts, store_of(opts) + (opts.ca_file,),
                                           self.restore_options.keeps_storage_class())
            else:
                target = self.restore.plan(restorepkt)
        except Skip as exc:
            self.log.info("not restored: %s" % exc)
            restorepkt.create_status = fd.CF_SKIP
            return fd.bRC_OK
        except RestoreRefused as exc:
            if "where=" in str(exc):
                if not self.restore.where_refused:
                    self.restore.where_refused = True
                    self.log.fatal(str(exc))
                restorepkt.create_status = fd.CF_SKIP
                return fd.bRC_OK
            self.log.error("cannot restore %s: %s" % (restorepkt.ofname, exc))
            restorepkt.create_status = fd.CF_SKIP
            return fd.bRC_OK
        except OSError as exc:
            self.log.error("cannot restore %s: %s" % (restorepkt.ofname, exc))
            restorepkt.create_status = fd.CF_SKIP
            return fd.bRC_OK
        self.log.debug("restore %s to %s" % (restorepkt.ofname, target))
        restorepkt.create_status = fd.CF_EXTRACT
        return fd.bRC_OK

    @_guarded("bRC_OK")
    def set_file_attributes(self, restorepkt):
        if self.restore is not None:
            self.restore.set_attributes(restorepkt.statp.st_mtime)
        return self.fd.bRC_OK

    def _restore_io(self, iop):
        fd, session = self.fd, self.restore
        try:
            if iop.func == fd.IO_OPEN:
                session.open()
            elif iop.func == fd.IO_WRITE:
                session.write(iop.buf)
                iop.status = iop.count
                return fd.bRC_OK
            elif iop.func == fd.IO_CLOSE:
                session.close()
            elif iop.func == fd.IO_SEEK:
                session.seek(iop.offset, iop.whence)
            else:
                iop.status, iop.io_errno = -1, errno.EINVAL
                return fd.bRC_Error
        except OSError as exc:
            session.abandon()
            self.log.error("cannot write %s: %s" % (session.target, exc.strerror or exc))
            iop.status, iop.io_errno = -1, exc.errno or errno.EIO
            return fd.bRC_Error
        except IncompleteCopy as exc:
            self.log.error(str(exc))
            iop.status, iop.io_errno = -1, errno.EIO
            return fd.bRC_Error
        iop.status = 0
        return fd.bRC_OK

    @_guarded("bRC_OK")
    def end_restore_file(self):
        if self.restore is not None:
            self.restore.end_file()
            problem = getattr(self.restore, "setup_error", None)
            if problem and not self.failed:
                self.failed = True  # the next files are not taken (parse_plugin_definition)
                self.log.fatal("cannot restore into buckets: %s" % problem)
        return self.fd.bRC_OK

    def _end_restore(self):
        if self.local_restore is not None:
            self.local_restore.abandon()
            self.log.info("%s restored" % plural(self.local_restore.restored, "object"))
            self.local_restore = None
        if self.bucket_restore is not None:
            try:
                self.bucket_restore.finish()
            finally:
                self.bucket_restore = None
                stop_servers()
        self.restore = None

    # -- callbacks with nothing to do -------------------------------------------------------
    def get_acl(self, acl):
        return self.fd.bRC_OK

    def set_acl(self, acl):
        return self.fd.bRC_OK

    @_guarded("bRC_Error")
    def get_xattr(self, xattr):
        """The object's metadata (metadata.py), one item per call (bRC_More: another follows)."""
        fd = self.fd
        if self.xattrs is None:
            item = self.item
            if item is not None and self.item_read:
                meta = item.download.meta if item.download is not None else item.meta  # a stream's tags come at its end
                self.xattrs = metadata.to_xattrs(meta)
            else:
                self.xattrs = []
        if not self.xattrs:
            return fd.bRC_OK
        name, value = self.xattrs.pop(0)
        xattr.name, xattr.value = bytearray(name), bytearray(value)  # bareos-fd takes bytearrays only
        return fd.bRC_More if self.xattrs else fd.bRC_OK

    @_guarded("bRC_OK")
    def set_xattr(self, xattr):
        """Metadata of the object just restored (after its data); never fails the file."""
        if self.restore is not None:
            problem = self.restore.set_xattr(xattr.name, xattr.value)
            if problem:
                self.log.warning(problem)
        return self.fd.bRC_OK

    def restore_object_data(self, rop):
        return self.fd.bRC_OK

    def handle_backup_file(self, savepkt):
        return self.fd.bRC_OK


def _bit(flags, bit):
    try:
        return bool(flags[bit >> 3] & (1 << (bit & 7)))
    except (TypeError, IndexError):
        return True  # no flags to read: assume Bareos's default (xattrsupport = yes)


def _raw_secrets(text):
    """The secret values of an option string that failed validation (to mask them)."""
    try:
        return tuple(v for k, v in split_plugin_string(text) if is_secret_option(k) and v)
    except OptionError:
        return ()
