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

from . import naming
from .backup import BackupSession, ChangePolicy, SetupFailed
from .helpers import python_executable, stop_servers
from .joblog import JobLog
from .journal import Journal
from .options import OptionError, OptionSet, is_secret_option
from .prefetch import JobCancelled, PoolFailed
from .restore import IncompleteCopy, RestoreRefused, RestoreSession, Skip

FILE_MODE = stat.S_IFREG | 0o640


def _guarded(default_attr):
    """Turn an unexpected exception into one fatal job message and ``bRC_<default_attr>``."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args):
            try:
                return method(self, *args)
            except Exception as exc:  # noqa: BLE001 - reported, never raised into bareos-fd
                self.failed = True
                self.log.exception(method.__name__, exc)
                return getattr(self.fd, default_attr)

        return wrapper

    return decorate


class BareosFdPluginLibcloud:
    """The plugin object of one job; ``bareosfd`` is passed in by the entrypoint."""

    def __init__(self, bareosfd, plugindef):
        self.fd = bareosfd
        self.log = JobLog(bareosfd)
        self.optset = OptionSet()
        self.opts = None
        self.failed = False
        self.cancelled = threading.Event()
        self.is_restore = chr(bareosfd.GetValue(bareosfd.bVarType)) == "R"
        self.backup = None
        self.backup_job_started = False
        self.item = None
        self.reader = None
        self.item_read = False
        self.restore = None
        self.progress_next = 0
        self.job_start = 0
        bareosfd.RegisterEvents(
            [
                bareosfd.bEventJobEnd,
                bareosfd.bEventEndBackupJob,
                bareosfd.bEventStartBackupJob,
                bareosfd.bEventEndRestoreJob,
                bareosfd.bEventCancelCommand,
            ]
        )

    # -- options -----------------------------------------------------------------------------
    def parse_plugin_definition(self, plugindef):
        """Merge and validate options (called at load, at the backup command and per restored file)."""
        if self.failed:
            return self.fd.bRC_Error
        try:
            if not self.optset.add_string(plugindef) and self.opts is not None:
                return self.fd.bRC_OK
            opts = self.optset.build(need_remote=not self.is_restore)
        except OptionError as exc:
            self.failed = True
            self.log.configure(self._raw_secrets(), False)
            self.log.fatal("bad plugin options: %s" % exc)
            return self.fd.bRC_Error
        for text in opts.warnings[len(self.opts.warnings) if self.opts else 0 :]:
            self.log.warning(text)
        self.opts = opts
        self.log.configure(opts.secrets, opts.debug)
        return self.fd.bRC_OK

    def _raw_secrets(self):
        return [v for k, v in self.optset.raw.items() if is_secret_option(k)]

    # -- events ------------------------------------------------------------------------------
    def handle_plugin_event(self, event):
        fd = self.fd
        if event == fd.bEventCancelCommand:
            self.cancelled.set()  # another thread: no bareosfd calls here
            if self.backup is not None:
                self.backup.abort()
            return fd.bRC_OK
        return self._handle_event(event)

    @_guarded("bRC_OK")
    def _handle_event(self, event):
        fd = self.fd
        if event == fd.bEventStartBackupJob:
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
        """Start the listing (at StartBackupJob, or at the first file of an estimate)."""
        if self.backup is not None or self.failed:
            return
        opts = self.opts
        if opts is None:
            self.failed = True
            self.log.fatal("the plugin received no options")
            return
        fd = self.fd
        level = chr(fd.GetValue(fd.bVarLevel))
        since = fd.GetValue(fd.bVarSinceTime) or 0 if level in "ID" else 0
        accurate = bool(fd.GetValue(fd.bVarAccurate)) and level in "ID"
        estimate = not self.backup_job_started
        policy = ChangePolicy(since, accurate, opts.prefetch_size, estimate)
        self.log.debug("level %s since %s accurate %s estimate %s" % (level, since, accurate, estimate))
        self.job_start = int(time.time())
        journal = None
        if not estimate:
            workdir = fd.GetValue(fd.bVarWorkingDir)
            if workdir:
                journal = Journal(workdir, fd.GetValue(fd.bVarJobName))
            else:
                self.log.warning("the daemon has no working directory: objects that fail are not retried")
        python = python_executable(opts.python)
        self.backup = BackupSession(opts, self.log, policy, python, self.cancelled, journal)
        if self.backup.forced:
            self.log.info("%d objects an earlier backup could not save are saved again" % len(self.backup.forced))
        self.progress_next = opts.progress_interval
        try:
            self.backup.start()
        except SetupFailed as exc:
            self.failed = True
            self.log.fatal(str(exc))
            self.backup.close()
        except JobCancelled:
            self.failed = True

    def _end_backup(self):
        if self.backup is None:
            return
        backup, self.backup = self.backup, None
        if self.item is not None:
            backup.done_with(self.item)
            self.item = None
        stats = backup.stats
        if not self.failed or stats.listed:
            self.log.info(stats.summary())
        if stats.failed and self.opts.fail_on_error and not self.failed:
            self.failed = True
            self.log.fatal("%d objects could not be saved and fail_on_error is set" % stats.failed)
        status = chr(self.fd.GetValue(self.fd.bVarJobStatus) or ord("T"))
        backup.close(job_ok=not self.failed and status not in "AEef")
        stop_servers()

    # -- backup ------------------------------------------------------------------------------
    @_guarded("bRC_Error")
    def start_backup_file(self, savepkt):
        fd = self.fd
        if self.backup is None and not self.failed:
            self._start_backup()
        if self.failed or self.backup is None or self.cancelled.is_set():
            return fd.bRC_Stop
        try:
            item = self.backup.next_object()
        except (JobCancelled, PoolFailed) as exc:
            if isinstance(exc, PoolFailed):
                self.failed = True
                self.log.fatal(str(exc))
            return fd.bRC_Stop
        if item is None:
            return fd.bRC_Stop
        self.item, self.reader, self.item_read = item, None, False
        statp = fd.StatPacket()
        statp.st_mode = FILE_MODE
        statp.st_nlink = 1
        statp.st_uid = statp.st_gid = 0
        statp.st_size = item.size
        mtime = item.mtime or 0
        statp.st_atime = statp.st_mtime = statp.st_ctime = mtime
        if item.forced:  # a changed ctime makes Bareos's accurate check save it again
            statp.st_ctime = self.job_start
        savepkt.statp = statp
        savepkt.fname = item.fname
        savepkt.type = fd.FT_REG
        savepkt.no_read = False
        self.log.debug("%s %s size %d mtime %d" % (item.plan, item.fname, item.size, mtime))
        return fd.bRC_OK

    @_guarded("bRC_Error")
    def end_backup_file(self):
        backup, item = self.backup, self.item
        if item is not None and backup is not None:
            if not self.item_read:  # Bareos found it unchanged (accurate) and read nothing
                backup.stats.unchanged += 1
            backup.done_with(item)
            self.item = self.reader = None
            stats = backup.stats
            if self.progress_next and stats.done >= self.progress_next:
                self.log.info("progress: " + stats.summary())
                self.progress_next = stats.done + self.opts.progress_interval
        return self.fd.bRC_More

    @_guarded("bRC_OK")
    def check_file(self, fname):
        """Accurate mode: keep (bRC_Seen) what this job could not judge deleted."""
        fd, backup = self.fd, self.backup
        if backup is None or not fname.startswith(naming.PREFIX):
            return fd.bRC_OK
        if fname in backup.failed_names:
            return fd.bRC_Seen
        try:
            bucket, _ = naming.parse_fname(fname)
        except naming.BadName:
            return fd.bRC_OK
        if bucket in backup.buckets and bucket not in backup.complete_buckets:
            return fd.bRC_Seen  # its listing did not finish: absence proves nothing
        return fd.bRC_OK

    # -- IO ----------------------------------------------------------------------------------
    @_guarded("bRC_Error")
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
        fd, item, backup = self.fd, self.item, self.backup
        self.item_read = True
        if item is None or backup is None or backup.pool is None:
            iop.status, iop.io_errno = -1, errno.EBADF
            return fd.bRC_Error
        try:
            if item.download is None and not backup.open_on_demand(item):
                download = item.download
                reason = download.error or "the object was deleted"
                backup.not_saved(item, reason)
                iop.status, iop.io_errno = -1, errno.EIO
                return fd.bRC_Error
        except (JobCancelled, PoolFailed):
            iop.status, iop.io_errno = -1, errno.EINTR
            return fd.bRC_Error
        self.reader = backup.reader(item)
        iop.status = 0
        return fd.bRC_OK

    def _backup_read(self, iop):
        fd, reader = self.fd, self.reader
        if reader is None:
            iop.status, iop.io_errno = -1, errno.EBADF
            return fd.bRC_Error
        try:
            piece = reader.read(iop.count)
        except (JobCancelled, PoolFailed):
            piece = None
        if piece is None:
            if not self.cancelled.is_set():
                self.backup.not_saved(self.item, self.item.download.error or "the download broke")
            iop.status, iop.io_errno = -1, errno.EIO
            return fd.bRC_Error
        iop.buf = piece
        iop.status = len(piece)
        if not piece:
            self.backup.saved(self.item, reader.sent)
        return fd.bRC_OK

    # -- restore -----------------------------------------------------------------------------
    @_guarded("bRC_OK")
    def start_restore_file(self, cmd):
        if self.restore is None:
            self.restore = RestoreSession(self.log)
        return self.fd.bRC_OK

    @_guarded("bRC_Error")
    def create_file(self, restorepkt):
        fd = self.fd
        if self.restore is None:
            self.restore = RestoreSession(self.log)
        try:
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
            self.restore.abandon()  # nothing left behind if IO_CLOSE never came
        return self.fd.bRC_OK

    def _end_restore(self):
        if self.restore is None:
            return
        self.restore.abandon()
        self.log.info("%d objects restored" % self.restore.restored)
        self.restore = None

    # -- callbacks with nothing to do -------------------------------------------------------
    def get_acl(self, acl):
        return self.fd.bRC_OK

    def set_acl(self, acl):
        return self.fd.bRC_OK

    def get_xattr(self, xattr):
        return self.fd.bRC_OK

    def set_xattr(self, xattr):
        return self.fd.bRC_OK

    def restore_object_data(self, rop):
        return self.fd.bRC_OK

    def handle_backup_file(self, savepkt):
        return self.fd.bRC_OK
