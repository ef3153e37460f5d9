"""Restore sequence (API doc 2b, trace sections 5 and 7).

Runs on the job thread. Per file: parse_plugin_definition, start_restore_file,
create_file, IO_OPEN/IO_WRITE..., set_file_attributes, IO_CLOSE,
set_acl/set_xattr, end_restore_file. Then events 6 and 2.
"""

import base64
import os
import struct
import threading

from .job import M_ERROR, M_FATAL, UNDEFINED_RETURN, bRC_OK, strerror
from .catalog import SPARSE_HEADER
from .loader import plugin_command, send_plugin_options
from .plugin_string import output_name

CF_SKIP, CF_ERROR, CF_EXTRACT, CF_CREATED, CF_CORE = 1, 2, 3, 4, 5
IO_OPEN, IO_WRITE, IO_CLOSE, IO_SEEK = 1, 3, 4, 5
IOSTAT_DO_IN_CORE = 1
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC          # 577 on Linux
REPLACE_CODES = {"always": "a", "ifnewer": "w", "ifolder": "o", "never": "n"}
FT_LNKSAVED, FT_REG, FT_REGE, FT_LNK = 1, 3, 2, 4


class RestoreRun:
    """Restore a list of cataloged FileRecords through the plugin."""

    def __init__(self, rt, where, regexwhere, replace, plugin_options=None, cancel_after_seconds=None):
        self.cancel_after_seconds = cancel_after_seconds
        self.rt = rt
        self.plugin_options = plugin_options
        self.where = where
        self.regexwhere = regexwhere
        self.replace = ord(REPLACE_CODES[replace])
        self.summary = {"files_restored": 0, "bytes_restored": 0}

    @property
    def fake(self):
        """This job's bareosfd module (created when the job starts)."""
        return self.rt.fake

    def run(self, records):
        rt = self.rt
        rt.level, rt.since = " ", 0
        if self.plugin_options:
            # dird/restore.cc: SendPluginOptions before the restore command; the fd's
            # RestoreCmd sets the type R and JobStatus R (dir_cmd.cc); until then nothing sets
            # them, so (inferred, not traced) they are what a backup's load sees: I and C.
            rt.type_char, rt.phase_status = "I", "C"
            send_plugin_options(rt, self.plugin_options)
        rt.type_char, rt.phase_status = "R", "R"
        rt.event(5)                    # bEventStartRestoreJob: only if options loaded Python
        timer = None
        if self.cancel_after_seconds is not None:
            timer = threading.Timer(self.cancel_after_seconds, self.deliver_cancel)
            timer.name = "fdemu-cancel-timer"
            timer.start()
        try:
            for record in records:
                if rt.stopped:
                    break
                self.restore_file(record)
            rt.phase_status = "T"
            rt.event(6)
            rt.event(2)
        finally:
            if timer is not None:  # a cancel may come until the job's end
                timer.cancel()
                timer.join()

    def deliver_cancel(self):
        """CancelCommand(14), on the timer's thread (trace section 6)."""
        self.rt.event(14)
        self.rt.canceled = True

    # ----------------------------------------------------------- per file
    def restore_file(self, record):
        rt = self.rt
        if plugin_command(rt, record.plugin, "RestoreCommand") != bRC_OK:
            rt.trace("core:skip", "RestoreCommand failed: %s not handled" % record.fname)
            return
        if rt.call("start_restore_file", record.plugin, info=record.fname) != bRC_OK:
            rt.message(M_FATAL, "Unbalanced call to createFile=0 0\n")
            return
        ofname = output_name(record.fname, self.where, self.regexwhere)
        status = self.create_file(record, ofname)
        if status is not None:
            self.handle_status(record, ofname, status)
        self.restore_acl_xattr(record, ofname)
        rc = rt.call("end_restore_file", info=record.fname)
        if rc == UNDEFINED_RETURN:
            rt.message(M_FATAL, "Return value of endRestoreFile invalid: -1, "
                       "plugin=python3-fd.so\n")

    def restore_packet(self, record, ofname):
        rp = self.fake.RestorePacket()
        statp = self.fake.StatPacket()
        for name, value in record.statp.items():
            setattr(statp, name, value)
        olname = ""
        if record.type == FT_LNKSAVED:
            olname = output_name(record.link, self.where, self.regexwhere)
        elif record.type == FT_LNK:
            olname = record.link
        has_data = record.type in (FT_REG, FT_REGE) or record.size > 0
        plain_where = None if self.regexwhere else self.where
        return self.fake._force(
            rp, stream=1, data_stream=2 if has_data else 0, type=record.type,
            file_index=record.file_index, linkFI=0, uid=record.statp["st_uid"],
            statp=statp, attrEX="", ofname=ofname, olname=olname,
            where=plain_where, regexwhere=None, replace=self.replace,
            create_status=CF_ERROR, filedes=-1, original_file_name=record.fname,
            original_link_name=record.link or "")

    def create_file(self, record, ofname):
        """PluginCreateFile; returns the create status or None on error."""
        rt = self.rt
        if rt.stopped:
            return None
        rp = self.restore_packet(record, ofname)
        rc = rt.call("create_file", rp, info=ofname)
        if rt.raised:
            return None
        if rc != bRC_OK:
            rt.message(M_ERROR, "Plugin createFile call failed. Stat=%d file=%s\n"
                       % (rc, ofname))
            return None
        status = rp.create_status
        if status == CF_ERROR:
            rt.message(M_ERROR, "Plugin createFile call failed. Returned CF_ERROR "
                       "file=%s\n" % ofname)
            return None
        return status

    def handle_status(self, record, ofname, status):
        if status in (CF_SKIP, CF_CREATED, CF_EXTRACT, CF_CORE):
            self.summary["files_restored"] += 1
        if status == CF_CREATED:
            self.set_attributes(record, ofname, None)
        elif status in (CF_EXTRACT, CF_CORE):
            if status == CF_CORE:
                os.makedirs(os.path.dirname(ofname) or ".", exist_ok=True)
            opened = self.open_output(ofname, 0o600 if status == CF_EXTRACT else 0)
            if opened is not None and self.write_data(record, ofname, opened):
                self.set_attributes(record, ofname, opened)
        elif status != CF_SKIP:
            self.rt.message(M_ERROR, "fdemu: unknown create_status %d for %s\n"
                            % (status, ofname))

    # ------------------------------------------------------------- IO
    def io_packet(self, func, **values):
        defaults = dict(func=func, count=0, flags=0, mode=0, buf=None, fname=None,
                        status=0, io_errno=0, lerror=0, whence=0, offset=0,
                        win32=False, filedes=0)
        defaults.update(values)
        return self.fake._force(self.fake.IoPacket(), **defaults)

    def plugin_io(self, iop, info):
        rc = self.rt.call("plugin_io", iop, info=info)
        if self.rt.raised:
            self.fake._force(iop, status=-1)
        return rc

    def open_output(self, ofname, mode):
        """bopen in plugin mode; returns the core fd for direct IO, 0 for
        plugin IO, None if the open failed."""
        iop = self.io_packet(IO_OPEN, fname=ofname, flags=WRITE_FLAGS, mode=mode,
                             filedes=-1)
        rc = self.plugin_io(iop, "IO_OPEN %s" % ofname)
        in_core = rc != 2 and iop.status == IOSTAT_DO_IN_CORE
        if rc == 2 or (in_core and iop.filedes == -1) or (not in_core and iop.status < 0):
            self.rt.message(M_ERROR, "Could not create %s: ERR=%s\n"
                            % (ofname, strerror(iop.io_errno)))
            return None
        return iop.filedes if in_core else 0

    def write_data(self, record, ofname, filedes):
        """One IO_WRITE per stored record. False after a write error.

        A sparse record starts with its file offset; where it is not where the last write
        ended, the core seeks first (restore.cc SparseData: blseek, which through python-fd
        is IO_SEEK and always "succeeds": the plugin cannot report an error there)."""
        address = 0
        for data in record.iter_records():
            if self.rt.stopped:
                break
            if record.sparse:
                offset, data = struct.unpack(">Q", data[:SPARSE_HEADER])[0], data[SPARSE_HEADER:]
                if offset != address:
                    address = offset
                    self.seek(ofname, filedes, offset)
                address += len(data)
            written, errno_value = self.write_record(ofname, filedes, data)
            if written != len(data):
                self.rt.message(M_ERROR, "Write error on %s: %s\n"
                                % (ofname, strerror(errno_value)))
                self.close(filedes)
                return False
            self.summary["bytes_restored"] += written
        return True

    def write_record(self, ofname, filedes, data):
        if filedes:
            try:
                return os.write(filedes, data), 0
            except OSError as exc:
                return -1, exc.errno
        iop = self.io_packet(IO_WRITE, count=len(data), buf=bytearray(data))
        self.plugin_io(iop, "IO_WRITE %s" % ofname)
        return iop.status, iop.io_errno

    def seek(self, ofname, filedes, offset):
        if filedes:
            os.lseek(filedes, offset, os.SEEK_SET)
            return
        iop = self.io_packet(IO_SEEK, offset=offset, whence=os.SEEK_SET)
        self.plugin_io(iop, "IO_SEEK %s %d" % (ofname, offset))

    def close(self, filedes):
        self.plugin_io(self.io_packet(IO_CLOSE, filedes=filedes), "IO_CLOSE")

    # ------------------------------------------------------- attributes
    def set_attributes(self, record, ofname, filedes):
        """PluginSetAttributes: a fresh packet, then bclose (IO_CLOSE) - or
        the core's SetAttributes if the plugin sets CF_CORE (trace 5)."""
        rp = self.restore_packet(record, ofname)
        self.rt.call("set_file_attributes", rp, info=ofname)
        if filedes is not None:
            self.close(filedes)
        if rp.create_status == CF_CORE:
            core_set_attributes(ofname, record.statp)

    def restore_acl_xattr(self, record, ofname):
        if record.acl:
            pkt = self.fake._force(self.fake.AclPacket(), fname=ofname,
                                   content=bytearray(base64.b64decode(record.acl)))
            self.rt.call("set_acl", pkt, info=ofname)
        for name, value in record.xattrs:
            pkt = self.fake._force(self.fake.XattrPacket(), fname=ofname,
                                   name=bytearray(base64.b64decode(name)),
                                   value=bytearray(base64.b64decode(value)))
            self.rt.call("set_xattr", pkt, info=ofname)


def core_set_attributes(ofname, statp):
    """attribs.cc SetAttributes, enough for tests: mode and times."""
    try:
        os.chmod(ofname, statp["st_mode"] & 0o7777)
        os.utime(ofname, (statp["st_atime"], statp["st_mtime"]))
    except OSError:
        pass
