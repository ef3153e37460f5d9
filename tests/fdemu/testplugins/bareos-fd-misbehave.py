"""Misbehaving test plugin: MemFiles plus the fault chosen by ``mode=``."""

import os
import subprocess
import tempfile
import threading
import time

import bareosfd
import memfiles_core


class Misbehave(memfiles_core.MemFiles):
    def __init__(self, plugindef):
        super().__init__(plugindef)
        self.mode = self.options.get("mode", "")
        self.files_started = 0
        self.skipped = False

    def second_file(self):
        return self.files_started == 2

    def handle_plugin_event(self, event):
        super().handle_plugin_event(event)
        if event == 3 and self.mode == "daemon_thread":
            threading.Thread(target=time.sleep, args=(3,), daemon=True,
                             name="leaky").start()
        if event == 3 and self.mode == "child":
            self.child = subprocess.Popen(["sleep", "3"])
        if event == 3 and self.mode == "tempfile":
            fd, self.tmp = tempfile.mkstemp(prefix="bareos-leak-")
            os.close(fd)
        if event == 4 and self.mode == "raise_event4":
            raise RuntimeError("boom in event 4")
        return bareosfd.bRC_OK

    def start_backup_file(self, savepkt):
        rc = super().start_backup_file(savepkt)
        self.files_started += 1
        mode = self.mode
        if mode == "raise_start2" and self.second_file():
            raise RuntimeError("boom in start_backup_file")
        if mode == "none_start" and self.second_file():
            return None
        if mode == "error_start" and self.second_file():
            return bareosfd.bRC_Error
        if mode == "skip_first" and not self.skipped:
            self.skipped = True
            self.todo.insert(0, self.current)
            return bareosfd.bRC_Skip
        if mode == "fname_bytes":
            savepkt.fname = savepkt.fname.encode()
        if mode == "statp_none":
            savepkt.statp = None
        if mode == "fork":
            os.fork()
        if mode == "strptime" and self.files_started == 1:
            import datetime

            datetime.datetime.strptime("2026-11-23", "%Y-%m-%d")
        if mode == "getvalue_checkchanges":
            bareosfd.GetValue(bareosfd.bVarCheckChanges)
        if mode == "thread_call" and self.files_started == 1:
            self.thread_error = None

            def worker():
                try:
                    bareosfd.JobMessage(bareosfd.M_INFO, "from a thread\n")
                except RuntimeError as exc:
                    self.thread_error = str(exc)
            thread = threading.Thread(target=worker)
            thread.start()
            thread.join()
            bareosfd.JobMessage(bareosfd.M_INFO, "thread said: %s\n" % self.thread_error)
        return rc

    def io_read(self, IOP):
        rc = super().io_read(IOP)
        second = self.files_started == 2
        if self.mode == "raise_read2" and second:
            raise RuntimeError("boom in IO_READ")
        if self.mode == "status_minus1" and second:
            IOP.status, IOP.io_errno = -1, 5
            return bareosfd.bRC_Error
        if self.mode == "fail_after_512k" and self.position > 524288:
            IOP.status, IOP.io_errno = -1, 13
            return bareosfd.bRC_OK
        if self.mode == "buf_too_long" and IOP.status > 0:
            IOP.buf = bytearray(IOP.count + 1)
        if self.mode == "status_gt_buf" and IOP.status > 0:
            IOP.status = len(IOP.buf) + 1
        if self.mode == "error_eof" and second:
            IOP.status = 0
            return bareosfd.bRC_Error
        return rc

    def create_file(self, rp):
        if self.mode == "raise_create":
            raise RuntimeError("boom in create_file")
        rc = super().create_file(rp)
        if self.mode == "cf_skip":
            rp.create_status = bareosfd.CF_SKIP
        if self.mode == "cf_error":
            rp.create_status = bareosfd.CF_ERROR
        if self.mode == "cf_core":
            rp.create_status = bareosfd.CF_CORE
        return rc

    def set_file_attributes(self, rp):
        super().set_file_attributes(rp)
        if self.mode == "cf_core":
            rp.create_status = bareosfd.CF_CORE
        return bareosfd.bRC_OK

    def io_write(self, IOP):
        if self.mode == "raise_write":
            raise RuntimeError("boom in IO_WRITE")
        if self.mode == "short_write":
            IOP.status = IOP.count - 1
            return bareosfd.bRC_OK
        return super().io_write(IOP)

    def end_restore_file(self):
        super().end_restore_file()
        if self.mode == "none_end_restore":
            return None
        return bareosfd.bRC_OK


memfiles_core.export(globals(), Misbehave)
