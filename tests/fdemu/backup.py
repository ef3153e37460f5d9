"""Backup and estimate sequences (API doc 2a/2c, trace sections 1-4, 6, 7).

Everything here runs on the job thread.
"""

import base64
import os
import stat
import threading
import time

from .catalog import SPARSE_HEADER, stat_to_dict
from .loader import plugin_command, plugin_options_list, send_plugin_options
from .job import (M_ERROR, M_FATAL, M_INFO, M_NOTSAVED, M_SKIPPED, bRC_Error,
                  bRC_More, bRC_OK, bRC_Seen, bRC_Skip, bRC_Stop, strerror)

READ_SIZE = 262144                     # 256 KiB: trace section 1, row 8
#: The Client's "Maximum Workers Per Job" (filed_conf.cc; default 2, 0 turns the pipeline off).
#: With workers, backup.cc SendPlainData sends a file of at least two reads through its parallel
#: pipeline, which has its own rule for skipping sparse blocks (see BackupRun.skips_block).
MAX_WORKERS_PER_JOB = 2
FT_LNKSAVED, FT_REGE, FT_REG, FT_LNK, FT_DIREND, FT_SPEC = 1, 2, 3, 4, 5, 6
FT_NOACCESS, FT_NOFOLLOW, FT_NOSTAT, FT_NOCHG, FT_DIRNOCHG = 7, 8, 9, 10, 11
FT_ISARCH, FT_NORECURSE, FT_NOFSCHG, FT_NOOPEN, FT_RAW, FT_FIFO = 12, 13, 14, 15, 16, 17
FT_DIRBEGIN, FT_INVALIDFS, FT_INVALIDDT, FT_REPARSE = 18, 19, 20, 21
FT_DELETED, FT_RESTORE_FIRST, FT_JUNCTION, FT_PLUGIN_CONFIG = 23, 25, 26, 27
FT_PLUGIN_CONFIG_FILLED = 28
OBJECT_TYPES = (FT_RESTORE_FIRST, FT_PLUGIN_CONFIG, FT_PLUGIN_CONFIG_FILLED)
SAVED_TYPES = (FT_LNKSAVED, FT_REGE, FT_REG, FT_LNK, FT_DIREND, FT_SPEC, FT_RAW,
               FT_FIFO, FT_REPARSE, FT_JUNCTION)
IO_OPEN, IO_READ, IO_CLOSE = 1, 2, 4
IOSTAT_DO_IN_CORE = 1
FO_NO_HARDLINK, FO_MTIMEONLY, FO_ACL, FO_XATTR, FO_NOATIME = 15, 11, 14, 27, 22
FO_SPARSE = 5
DEFAULT_FLAGS = bytes.fromhex("02c0000800")    # trace section 1, row 6
ACCURATE_BITS = {"i": 1, "p": 2, "n": 4, "u": 8, "g": 16, "s": 32, "a": 64,
                 "m": 128, "c": 256, "d": 512}


def bit_is_set(bit, flags):
    return bool(flags[bit >> 3] & (1 << (bit & 7)))


def plugin_lines(plugin):
    """A FileSet's ``Plugin =`` lines: one string, or a list of them in FileSet order."""
    return [plugin] if isinstance(plugin, str) else list(plugin)


def run_backup(rt, plugin, flags, volume, cancel_after_reads=None,
               accurate_options="mcs", cancel_after_seconds=None, plugin_options=None):
    """The backup job as Python sees it (API doc 2a, trace section 1)."""
    lines = plugin_lines(plugin)
    run = BackupRun(rt, lines[0], flags, volume, cancel_after_reads,
                    accurate_options)
    timer = None
    if cancel_after_seconds is not None:
        timer = threading.Timer(cancel_after_seconds, run.deliver_cancel)
        timer.name = "fdemu-cancel-timer"
        timer.start()
    try:
        return _backup_job(rt, lines, run, accurate_options, plugin_options)
    finally:
        if timer is not None:
            timer.cancel()
            timer.join()


def _fileset_command(rt, lines):
    """The FileSet command: bEventPluginCommand per Plugin line (fileset.cc, in FileSet
    order; the first loads the module), then bEventEndFileSet (dir_cmd.cc)."""
    for line in lines:
        plugin_command(rt, line, "PluginCommand")
    rt.event(16)


def _backup_job(rt, lines, run, accurate_options, plugin_options=None):
    _fileset_command(rt, lines)
    # dird/backup.cc DoNativeBackup: level, fileset, then SendPluginOptions, then (restore
    # objects, accurate list and) the backup command. The module is loaded by now.
    send_plugin_options(rt, plugin_options)
    rt.type_char, rt.phase_status = "B", "B"
    rt.event(3)
    rt.phase_status = "R"
    rt.accurate_options = frozenset(
        bit for bit in (ACCURATE_BITS.get(c) for c in accurate_options) if bit)
    for line in lines:                 # PluginSave per plugin include, in FileSet order
        run.plugin_string = line
        if rt.stopped:
            rt.message(M_FATAL, 'PluginSave: Command plugin "%s" requested, but job is '
                       "already cancelled.\n" % line)
            break
        if plugin_command(rt, line, "BackupCommand") == bRC_OK:
            run.plugin_save()
    if rt.has_accurate_list:
        run.check_deleted()
    rt.phase_status = "T"
    rt.event(4)
    rt.event(2)
    return run


def run_estimate(rt, plugin, flags, plugin_options=None):
    """estimate: no IO, no events 3/4 (API doc 2c, trace section 4).

    The director's estimate command (dird/ua_cmds.cc EstimateCmd) sends the level, the FileSet,
    the accurate list and ``estimate``, but never SendPluginOptions: a Job's "FD Plugin
    Options" do not reach an estimate."""
    lines = plugin_lines(plugin)
    run = BackupRun(rt, lines[0], flags)
    _fileset_command(rt, lines)
    for value in plugin_options_list(plugin_options):
        rt.trace("core:NewPluginOptions", "not sent: an estimate gets no plugin options "
                 "(dird/ua_cmds.cc EstimateCmd): %s" % value)
    rt.phase_status = "R"
    run.summary.update(files=0, bytes=0)
    for line in lines:
        run.plugin_string = line
        if not rt.stopped and plugin_command(rt, line, "EstimateCommand") == bRC_OK:
            run.plugin_estimate()
    rt.event(2)
    return run


#: Verify levels (include/job_level.h) and how bareos-fd and the director run them.
VERIFY_LEVELS = {"O": "VolumeToCatalog", "d": "DiskToCatalog", "C": "Catalog", "V": "InitCatalog", "A": "Data"}


def run_verify(rt, plugin, level, records):
    """A Verify job as a command plugin sees it (filed/dir_cmd.cc VerifyCmd).

    Every level gets the FileSet first (bEventPluginCommand per Plugin line: the module is
    loaded and parses its options), then bEventLevel and bEventStartVerifyJob.
    * "O" VolumeToCatalog (filed/verify_vol.cc): the storage daemon reads the verified job's
      volume; the attribute and digest records on it go to the director, which compares them with
      the catalog (dird/verify.cc).  Data records are skipped; no plugin callback runs.  Here the
      records read back are the catalog's own, so each one matches.
    * "d" DiskToCatalog, "C" Catalog, "V" InitCatalog (filed/verify.cc DoVerify): FindFiles runs
      without a plugin callback, so the first Plugin line ends the job (findlib/find.cc).
    * "A" Data: the director has no implementation (dird/verify.cc: "Unimplemented verify level").
    """
    lines = plugin_lines(plugin)
    _fileset_command(rt, lines)
    rt.phase_status = "R"
    rt.event(12)
    rt.event(7)
    run = BackupRun(rt, lines[0], DEFAULT_FLAGS)
    if rt.stopped:
        pass
    elif level == "O":
        run.summary.update(files_examined=len(records), bytes_read=sum(r.size for r in records))
    elif level in ("d", "C", "V"):
        rt.message(M_FATAL, 'Plugin: "%s" not found.\n' % lines[0])
    else:
        rt.message(M_FATAL, "Unimplemented verify level %d\n" % ord(level))
    rt.event(8)
    rt.event(2)
    return run


class FileState:
    """Per-file bookkeeping while the core saves one plugin file."""

    def __init__(self, fname, flags):
        self.fname = fname
        self.flags = flags
        self.canceled_in_read = False
        self.sparse = False       # FileSet sparse=yes (FO_SPARSE)
        self.position = 0         # file offset of the next block read
        self.read_size = 0        # IOP.count of each IO_READ


class BackupRun:
    """One backup (or estimate) of one plugin line."""

    def __init__(self, rt, plugin_string, flags, volume=None,
                 cancel_after_reads=None, accurate_options="mcs"):
        self.rt = rt
        self.fake = rt.fake
        self.plugin_string = plugin_string
        self.flags = bytes(flags)
        self.volume = volume
        self.cancel_after_reads = cancel_after_reads
        self.accurate_mask = sum(ACCURATE_BITS.get(c, 0) for c in accurate_options)
        self.reads = 0
        self.file_index = 0
        self.hardlinks = {}
        self.cancel_thread = None
        self.summary = {"files_examined": 0, "files_written": 0,
                        "bytes_written": 0, "bytes_read": 0}

    # ------------------------------------------------------------ the loop
    def plugin_save(self):
        """fd_plugins.cc PluginSave: the start/end_backup_file loop."""
        rt = self.rt
        while not rt.stopped:
            sp = self.new_save_packet()
            rc = self.start_backup_file(sp)
            if rc == bRC_Skip:
                continue
            if rc != bRC_OK:
                self.report_start_rc(rc)
                return
            if sp.type == 0:
                rt.message(M_FATAL, 'Command plugin "%s": no type in startBackupFile '
                           "packet.\n" % self.plugin_string)
                return
            state = FileState(sp.fname, self.flags)
            if not self.save_one(sp, state):
                return
            rc = rt.call("end_backup_file", info=state.fname)
            if state.canceled_in_read or rt.canceled:
                return                      # trace 6: return ignored
            if rc in (bRC_More, bRC_OK):
                rt.seen.add(state.fname)
            if rc != bRC_More:
                return

    def plugin_estimate(self):
        """fd_plugins.cc PluginEstimate: count, sum sizes, list."""
        rt = self.rt
        while not rt.stopped:
            sp = self.new_save_packet()
            if self.start_backup_file(sp) != bRC_OK:
                return
            if sp.type == 0:
                rt.message(M_FATAL, 'Command plugin "%s": no type in startBackupFile '
                           "packet.\n" % self.plugin_string)
                return
            if sp.type not in OBJECT_TYPES:
                self.estimate_one(sp)
            rc = rt.call("end_backup_file", info=sp.fname)
            if rc in (bRC_More, bRC_OK):
                rt.seen.add(sp.fname)
            if rc != bRC_More:
                return

    def estimate_one(self, sp):
        if sp.type in SAVED_TYPES:
            self.summary["files"] += 1
        size = _signed64(sp.statp.st_size)
        if sp.type != FT_LNKSAVED and stat.S_ISREG(sp.statp.st_mode) and size > 0:
            self.summary["bytes"] += size
        self.rt.new_record(sp.fname, sp.type, stat_to_dict(sp.statp),
                           sp.link or "", self.plugin_string)
        self.rt.result.listing.append(ls_line(sp))

    def new_save_packet(self):
        """A SavePacket as the plugin sees it on entry (trace 1, row 6)."""
        sp = self.fake.SavePacket()
        self.fake._force(sp, fname="", link="", type=0, statp=None,
                         flags=bytearray(self.flags), portable=True, no_read=False,
                         accurate_found=False, cmd=self.plugin_string, save_time=0,
                         delta_seq=0, object_name=None, object=None, object_len=0,
                         object_index=0)
        return sp

    def start_backup_file(self, sp):
        """python-fd startBackupFile: call, copy back, incremental check."""
        rt = self.rt
        rc = rt.call("start_backup_file", sp)
        if rc != bRC_OK:
            return rc
        problem = self.packet_problem(sp)
        if problem:
            rt.message(M_FATAL, "bareosfd: %s\n" % problem)
            return bRC_Error
        self.summary["files_examined"] += 1
        if rt.level in ("I", "D"):
            if sp.save_time == 0 and rt.since:
                sp.save_time = rt.since
            if not check_changes(rt, sp, sp.save_time, self.accurate_mask):
                sp.type = FT_DIRNOCHG if sp.type == FT_DIRBEGIN else FT_NOCHG
        return rc

    def packet_problem(self, sp):
        """PySavePacketToNative checks; returns the Python error text."""
        if sp.type in OBJECT_TYPES:
            if not isinstance(sp.object, bytearray) or sp.object_len <= 0 \
                    or sp.object_len > len(sp.object):
                return ("RuntimeError: restore object needs object (bytearray) and "
                        "0 < object_len <= len(object)")
            return None
        if sp.fname is None:
            return "RuntimeError: fname is empty"
        if not isinstance(sp.fname, str):
            return 'TypeError: fname needs to be of type string "utf-8"'
        if sp.link is not None and not isinstance(sp.link, str):
            return 'TypeError: if given, link needs to be of type string "utf-8"'
        if sp.statp is None:
            return "RuntimeError: PyStatPacketToNative() failed (statp is None)"
        if not isinstance(sp.statp, self.fake.StatPacket):
            return ("TypeError: statp must be a bareosfd.StatPacket of this job, got %s"
                    % type(sp.statp).__name__)
        if not isinstance(sp.flags, bytearray):
            return "TypeError: flags need to be of type bytearray"
        if len(sp.flags) != 5:
            return "RuntimeError: PyByteArray_Size(flags) failed"
        return None

    def report_start_rc(self, rc):
        if rc == bRC_Stop:
            return
        if rc == bRC_Error:
            self.rt.message(M_FATAL, 'Command plugin "%s": startBackupFile failed.\n'
                            % self.plugin_string)
        else:
            self.rt.message(M_ERROR, 'Command plugin "%s": unhandled returncode from '
                            "startBackupFile.\n" % self.plugin_string)

    # --------------------------------------------------------- one file
    def save_one(self, sp, state):
        """Hard-link check, then SaveFile. False ends the plugin line."""
        rt = self.rt
        if sp.type in OBJECT_TYPES:
            rt.trace("core:restore_object", "%s index=%d len=%d" % (
                sp.object_name, sp.object_index, sp.object_len))
            rt.result.summary.setdefault("restore_objects", []).append(
                (sp.object_name, bytes(sp.object[:sp.object_len]), sp.object_index))
            return True
        state.flags = bytes(sp.flags)
        record = rt.new_record(sp.fname, sp.type, stat_to_dict(sp.statp),
                               link=sp.link or "", plugin=self.plugin_string)
        record.delta_seq = sp.delta_seq
        no_read = sp.no_read
        if not bit_is_set(FO_NO_HARDLINK, self.flags) and sp.statp.st_nlink > 1:
            no_read = self.hardlink(sp, record) or no_read
        if rt.stopped:
            return True                    # SaveFile returns at once
        self.save_file(sp, record, state, no_read)
        return True

    def hardlink(self, sp, record):
        """fd_plugins.cc: a later name for a seen (dev, ino) becomes
        FT_LNKSAVED without data; the same name again is not read."""
        if stat.S_IFMT(sp.statp.st_mode) not in (stat.S_IFREG, stat.S_IFCHR,
                                                  stat.S_IFBLK, stat.S_IFIFO,
                                                  stat.S_IFSOCK):
            return False
        key = (sp.statp.st_dev, sp.statp.st_ino)
        if key not in self.hardlinks:
            self.hardlinks[key] = sp.fname
            return False
        first = self.hardlinks[key]
        if first == sp.fname:
            return True
        record.type = FT_LNKSAVED
        record.link = first
        return True

    def save_file(self, sp, record, state, no_read):
        """backup.cc SaveFile for a command-plugin file."""
        rt = self.rt
        ftype = record.type
        if ftype in (FT_NOCHG, FT_DIRNOCHG):
            rt.message(M_SKIPPED, "     Unchanged file skipped: %s\n" % record.fname)
            return
        if not self.type_is_saved(record):
            return
        self.catalog(record)
        if ftype == FT_DELETED:
            record.deleted = True
            return
        if not no_read:
            self.read_data(record, state)
            if state.canceled_in_read:
                return
        if bit_is_set(FO_ACL, state.flags) and ftype != FT_LNK:
            self.get_acl(record)
        if bit_is_set(FO_XATTR, state.flags):
            self.get_xattr(record)

    def type_is_saved(self, record):
        """The SaveFile type switch; reports the types that are not saved."""
        rt, ftype, name = self.rt, record.type, record.fname
        if ftype in SAVED_TYPES or ftype == FT_DELETED:
            if ftype == FT_SPEC and stat.S_ISSOCK(record.statp["st_mode"]):
                rt.message(M_SKIPPED, "     Socket file skipped: %s\n" % name)
                return False
            return True
        notsaved = {FT_NOACCESS: "Could not access", FT_NOFOLLOW: "Could not follow link",
                    FT_NOSTAT: "Could not stat", FT_NOOPEN: "Could not open directory"}
        if ftype in notsaved:
            rt.message(M_NOTSAVED, '     %s "%s": ERR=%s\n' % (notsaved[ftype], name,
                                                              strerror(0)))
            rt.result.errors += 1
        elif ftype == FT_ISARCH:
            rt.message(M_NOTSAVED, "     Archive file not saved: %s\n" % name)
        elif ftype in (FT_NORECURSE, FT_NOFSCHG, FT_INVALIDFS, FT_INVALIDDT):
            rt.message(M_INFO, "     %s: not descending (type %d)\n" % (name, ftype))
        elif ftype == FT_DIRBEGIN:
            pass                               # "not used"
        else:
            rt.message(M_NOTSAVED, "     Unknown file type %d; not saved: %s\n"
                       % (ftype, name))
            rt.result.errors += 1
        return False

    def catalog(self, record):
        self.file_index += 1
        record.file_index = self.file_index
        record.cataloged = True
        self.summary["files_written"] += 1

    # -------------------------------------------------------------- IO
    def io_packet(self, func, **values):
        iop = self.fake.IoPacket()
        defaults = dict(func=func, count=0, flags=0, mode=0, buf=None, fname=None,
                        status=0, io_errno=0, lerror=0, whence=0, offset=0,
                        win32=False, filedes=0)
        defaults.update(values)
        return self.fake._force(iop, **defaults)

    def read_data(self, record, state):
        """bopen / read loop / bclose through plugin_io."""
        rt = self.rt
        flags = os.O_RDONLY | (os.O_NOATIME if bit_is_set(FO_NOATIME, state.flags) else 0)
        iop = self.io_packet(IO_OPEN, fname=record.fname, flags=flags, filedes=-1)
        rc = self.plugin_io(iop, "IO_OPEN %s" % record.fname)
        in_core = iop.status == IOSTAT_DO_IN_CORE and rc != bRC_Error
        if rc == bRC_Error or (in_core and iop.filedes == -1) or \
                (not in_core and iop.status < 0):
            rt.message(M_NOTSAVED, '     Cannot open "%s": ERR=%s.\n'
                       % (record.fname, strerror(iop.io_errno)))
            rt.result.errors += 1
            return
        filedes = iop.filedes if in_core else 0
        self.volume.start(record)
        state.sparse = bit_is_set(FO_SPARSE, state.flags)
        state.position = 0
        # with sparse=yes each record starts with its file offset, so a read asks for 8 bytes less
        state.read_size = READ_SIZE - SPARSE_HEADER if state.sparse else READ_SIZE
        if in_core:
            self.read_in_core(record, state, filedes)
        else:
            self.read_loop(record, state)
        self.volume.finish(record)
        self.plugin_io(self.io_packet(IO_CLOSE, filedes=filedes), "IO_CLOSE")

    def read_in_core(self, record, state, filedes):
        """Direct IO: the core reads the plugin's fd itself."""
        while True:
            try:
                data = os.read(filedes, state.read_size)
            except OSError as exc:
                self.read_error(record, exc.errno, "os.read on the plugin's filedes failed")
                return
            if not data:
                return
            self.store(record, state, data)

    def read_loop(self, record, state):
        while True:
            status, data, errno_value, why = self.read_once(record.fname, state.read_size)
            if self.rt.canceled and not state.canceled_in_read:
                state.canceled_in_read = True
                if status > 0:
                    self.read_once(record.fname, state.read_size)      # trace 6: one more read
                return
            if status == 0:
                return
            if status < 0:
                self.read_error(record, errno_value, why)
                return
            self.store(record, state, data)

    def read_once(self, fname, count):
        """One IO_READ. Returns (status, data, io_errno, why)."""
        self.reads += 1
        iop = self.io_packet(IO_READ, count=count)
        cancel = self.start_cancel if self.reads == self.cancel_after_reads else None
        self.plugin_io(iop, "IO_READ %s" % fname, on_enter=cancel)
        self.join_cancel()
        if self.rt.raised:
            return -1, None, iop.io_errno, None
        return self.check_read(iop)

    def check_read(self, iop):
        """PyIoPacketToNative for IO_READ."""
        status, buf, count, errno_value = iop.status, iop.buf, iop.count, iop.io_errno
        if status == 0:
            return 0, b"", errno_value, None
        if status < 0:
            return -1, None, errno_value, None
        if not isinstance(buf, (bytes, bytearray)):
            why = ("IO_READ set status=%d but buf is %s, not bytearray/bytes: the real "
                   "core would store stale buffer contents" % (status, type(buf).__name__))
            self.rt.emulator_error(why)
            return -1, None, errno_value, why
        if len(buf) > count or status > count:
            return -1, None, errno_value, (
                "IO_READ returned len(buf)=%d, status=%d for count=%d: python-fd "
                "treats this as status -1" % (len(buf), status, count))
        if status > len(buf):
            return -1, None, errno_value, (
                "IO_READ returned status=%d > len(buf)=%d: the real core would memcpy "
                "past the end of buf" % (status, len(buf)))
        return status, bytes(memoryview(buf)[:status]), errno_value, None

    def read_error(self, record, errno_value, why=None):
        """backup.cc: M_ERROR 'Read error', JobErrors+1; the file stays
        cataloged with the MD5 of the bytes sent so far (trace section 7)."""
        self.rt.message(M_ERROR, "Read error on file %s. ERR=%s\n"
                        % (record.fname, strerror(errno_value)))
        if why:
            self.rt.message(M_INFO, "fdemu: %s\n" % why)
        record.read_error = True

    def store(self, record, state, data):
        """SendPlainData for one block: with sparse=yes an all-zero block may be skipped (see
        ``skips_block``; the digest skips it too). Every sent block carries its file offset."""
        offset = state.position
        state.position += len(data)
        self.summary["bytes_read"] += len(data)
        if state.sparse and self.skips_block(record, state, offset, data):
            return
        self.volume.write(record, data, offset if state.sparse else None)
        self.summary["bytes_written"] += len(data)

    @staticmethod
    def skips_block(record, state, offset, data):
        """Whether Bareos leaves this block out of a sparse backup (backup.cc, read there).

        A block is skipped only when it is all zeros and exactly one read long, and then:
        - ``SendPlainDataSerially`` / ``SendDataToSd`` (a file smaller than two reads,
          MAX_WORKERS_PER_JOB = 0, or encryption): when it ends before the file's end
          (``fileAddr + length < st_size``), so the last block is always sent and the restore
          gets the size back;
        - SendPlainData's parallel pipeline (the default for a file of at least two reads):
          when ``length + read size < st_size``. The block's offset is not part of that test,
          so a full zero block at the very end of a file longer than two reads is skipped too,
          and the file restores short (its size is an exact multiple of the read size).
        Unsized FT_RAW/FT_FIFO files (st_size 0) skip every full zero block (both paths; the
        serial one also tests a short block, against the whole read buffer: not emulated).
        """
        size = record.statp["st_size"] % (1 << 64)  # compared as uint64_t there
        length, read_size = len(data), state.read_size
        if record.type in (FT_RAW, FT_FIFO) and size == 0:
            candidate = length == read_size
        elif MAX_WORKERS_PER_JOB > 0 and size >= 2 * read_size:
            candidate = length == read_size and length + read_size < size
        else:
            candidate = length == read_size and offset + length < size
        return candidate and data.count(0) == length

    def plugin_io(self, iop, info, on_enter=None):
        """PyPluginIO: an exception sets status -1 (and M_FATAL)."""
        rc = self.rt.call("plugin_io", iop, info=info, on_enter=on_enter)
        if self.rt.raised:
            self.fake._force(iop, status=-1)
        return rc

    # ---------------------------------------------------------- cancel
    def start_cancel(self):
        """Deliver CancelCommand(14) on another thread (trace section 6)."""
        self.cancel_thread = threading.Thread(target=self.deliver_cancel, name="fdemu-cancel")
        self.cancel_thread.start()

    def deliver_cancel(self):
        self.rt.event(14)
        self.rt.canceled = True

    def join_cancel(self):
        if self.cancel_thread is not None:
            self.cancel_thread.join()
            self.cancel_thread = None

    # -------------------------------------------------------- acl/xattr
    def get_acl(self, record):
        pkt = self.fake._force(self.fake.AclPacket(), fname=record.fname, content=None)
        self.rt.call("get_acl", pkt, info=record.fname)
        if isinstance(pkt.content, (bytes, bytearray)) and pkt.content:
            record.acl = base64.b64encode(bytes(pkt.content)).decode()

    def get_xattr(self, record):
        """get_xattr until it stops returning bRC_More."""
        for _ in range(100000):
            pkt = self.fake._force(self.fake.XattrPacket(), fname=record.fname,
                                   name=None, value=None)
            rc = self.rt.call("get_xattr", pkt, info=record.fname)
            # bareosfd.cc PyXattrPacketToNative: only a bytearray name is taken (anything else is
            # dropped without a word); an empty bytearray name or value makes it fail halfway.
            if isinstance(pkt.value, bytearray) and not pkt.value and pkt.name:
                self.rt.emulator_error("get_xattr gave %r an empty value: bareos-fd fails to convert it "
                                       "(PyXattrPacketToNative), with undefined results" % bytes(pkt.name))
            if isinstance(pkt.name, bytearray) and pkt.name:
                value = bytes(pkt.value) if isinstance(pkt.value, bytearray) else b""
                record.xattrs.append([base64.b64encode(bytes(pkt.name)).decode(),
                                      base64.b64encode(value).decode()])
            elif pkt.name:
                self.rt.trace("core:xattr-dropped", "%s: name is %s, not a bytearray"
                              % (record.fname, type(pkt.name).__name__))
            if self.rt.raised or rc != bRC_More:
                return
        self.rt.emulator_error("get_xattr returned bRC_More 100000 times for %s"
                               % record.fname)

    # --------------------------------------------------------- accurate
    def check_deleted(self):
        """accurate.cc AccurateFinish: check_file for unseen names."""
        rt = self.rt
        for fname, previous in list(rt.previous.items()):
            if rt.stopped:
                return
            if fname in rt.seen:
                continue
            rc = rt.call("check_file", fname, info=fname)
            if rt.raised or rc == bRC_Seen:
                continue
            statp = {k: 0 for k in previous.statp}
            statp["st_mtime"] = previous.statp["st_mtime"]
            statp["st_ctime"] = previous.statp["st_ctime"]
            record = rt.new_record(fname, FT_DELETED, statp, plugin=previous.plugin)
            record.deleted = True
            record.cataloged = True
            self.summary["files_written"] += 1
            rt.result.deleted.append(fname)


def check_changes(rt, sp, save_time, accurate_mask=32 | 128 | 256):
    """bareosCheckChanges: True if the file must be saved.

    Accurate jobs compare with the previous state (accurate.cc); others use
    mtime/ctime >= save_time (find_one.cc CheckChanges)."""
    sp.accurate_found = False
    if not rt.check_changes or sp.statp is None:
        return True
    if rt.accurate and rt.level in ("I", "D") and rt.has_accurate_list:
        return accurate_changed(rt, sp, accurate_mask)
    save_time = sp.save_time or save_time
    if not save_time:
        return True
    mtime_only = bit_is_set(FO_MTIMEONLY, bytes(sp.flags or bytes(5)))
    unchanged = sp.statp.st_mtime < save_time and (
        mtime_only or sp.statp.st_ctime < save_time)
    return not unchanged


def accurate_changed(rt, sp, mask):
    """AccurateCheckFile with the FileSet accurate options (default mcs)."""
    name = sp.link if stat.S_ISDIR(sp.statp.st_mode) else sp.fname
    previous = rt.previous.get(name)
    sp.delta_seq = 0
    if previous is None:
        return True
    sp.accurate_found = True
    sp.delta_seq = previous.delta_seq
    old = previous.statp
    checks = [(1, "st_ino"), (2, "st_mode"), (4, "st_nlink"), (8, "st_uid"),
              (16, "st_gid"), (32, "st_size"), (64, "st_atime"), (128, "st_mtime"),
              (256, "st_ctime")]
    for bit, attr in checks:
        if mask & bit and old[attr] != getattr(sp.statp, attr):
            return True
    if mask & 512 and old["st_size"] > sp.statp.st_size:
        return True
    return False


def _signed64(value):
    return value - (1 << 64) if value >= (1 << 63) else value


def ls_line(sp):
    """lib/attr.cc attr_to_ls_output (estimate listing, trace section 4)."""
    import grp
    import pwd
    st = sp.statp
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.st_ctime))
    line = "%s  %2u %-8.8s %-8.8s%12.12s %s  %s" % (
        stat.filemode(st.st_mode), st.st_nlink, user, group,
        _signed64(st.st_size), when, sp.fname)
    if sp.type == FT_LNK:
        line += " -> " + (sp.link or "")
    return line
