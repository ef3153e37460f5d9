"""A tiny fd plugin serving in-memory files, for testing the emulator.

Options (plugin string): ``files=<json>`` (list of file specs; default: the
trace's five objects), ``log=<jsonl>`` (one line per callback), ``seen=1``
(check_file answers bRC_Seen), ``direct_io=1`` (IO in core via memfd),
``read_delay=<s>`` (sleep in every IO_READ), ``mode=<name>`` (misbehaviour,
see bareos-fd-misbehave.py).
"""

import json
import os
import threading
import time

import bareosfd

TRACE_FILES = [
    {"fname": "/@trace/bkt/a.txt", "data": "hello world"},
    {"fname": "/@trace/bkt/c.txt", "size": 100},
    {"fname": "/@trace/bkt/d.txt", "size": 200},
    {"fname": "/@trace/bkt/dir/b.bin", "size": 1572864},
    {"fname": "/@trace/bkt/empty", "data": ""},
]


def file_data(spec):
    if "data" in spec:
        return spec["data"].encode()
    pattern = (spec["fname"].encode() + b"|") * 8
    return (pattern * (spec["size"] // len(pattern) + 1))[:spec["size"]]


def parse_options(text):
    options = {}
    for part in text.split(":"):
        if "=" in part:
            key, value = part.split("=", 1)
            options.setdefault(key, value)
    return options


class MemFiles:
    def __init__(self, plugindef):
        self.job_thread = threading.get_ident()
        self.options = parse_options(plugindef)
        self.log("__init__", plugindef=plugindef)
        bareosfd.RegisterEvents(range(1, 32))

    # -------------------------------------------------------------- utils
    def log(self, call, **info):
        path = getattr(self, "options", {}).get("log")
        if not path:
            return
        entry = dict(call=call, job_thread=threading.get_ident() == self.job_thread,
                     **info)
        try:
            entry.update(status=chr(bareosfd.GetValue(bareosfd.bVarJobStatus)),
                         type=chr(bareosfd.GetValue(bareosfd.bVarType)),
                         level=chr(bareosfd.GetValue(bareosfd.bVarLevel)))
        except RuntimeError as exc:
            entry["getvalue_error"] = str(exc)
        with open(path, "a") as handle:
            handle.write(json.dumps(entry) + "\n")

    def files(self):
        if "files" in self.options:
            with open(self.options["files"]) as handle:
                return json.load(handle)
        return [dict(spec, mtime=1700000000, ctime=1700000000) for spec in TRACE_FILES]

    # ------------------------------------------------------------- backup
    def parse_plugin_definition(self, plugindef):
        self.log("parse_plugin_definition", plugindef=plugindef)
        self.todo = list(self.files())
        return bareosfd.bRC_OK

    def handle_plugin_event(self, event):
        self.log("handle_plugin_event", event=event)
        return bareosfd.bRC_OK

    def start_backup_file(self, savepkt):
        if not self.todo:
            self.log("start_backup_file", empty=True)
            return bareosfd.bRC_Stop
        spec = self.todo.pop(0)
        self.current = spec
        self.data = file_data(spec)
        kind = spec.get("type", "reg")
        mode = {"reg": 0o100644, "dir": 0o40755, "lnk": 0o120777}[kind]
        savepkt.fname = spec["fname"]
        savepkt.type = {"reg": bareosfd.FT_REG, "dir": bareosfd.FT_DIREND,
                        "lnk": bareosfd.FT_LNK}[kind]
        if kind != "reg":
            savepkt.link = spec.get("link", spec["fname"] + "/")
            savepkt.no_read = True
        savepkt.statp = bareosfd.StatPacket(
            mode=mode, size=len(self.data), mtime=spec.get("mtime", 1700000000),
            ctime=spec.get("ctime", 1700000000), atime=spec.get("mtime", 1700000000),
            nlink=spec.get("nlink", 1), ino=spec.get("ino", 0), dev=spec.get("dev", 0))
        if "save_time" in spec:
            savepkt.save_time = spec["save_time"]
        self.log("start_backup_file", fname=spec["fname"], save_time=savepkt.save_time)
        return bareosfd.bRC_OK

    def end_backup_file(self):
        self.log("end_backup_file")
        return bareosfd.bRC_More if self.todo else bareosfd.bRC_OK

    def plugin_io(self, IOP):
        name = {1: "IO_OPEN", 2: "IO_READ", 3: "IO_WRITE", 4: "IO_CLOSE"}[IOP.func]
        self.log("plugin_io", func=name, count=IOP.count)
        return getattr(self, name.lower())(IOP)

    def io_open(self, IOP):
        self.fname = IOP.fname
        if IOP.flags & os.O_WRONLY:
            return self.open_for_restore(IOP)
        self.position = 0
        if self.options.get("direct_io"):
            fd = os.memfd_create("memfiles")
            os.write(fd, self.data)
            os.lseek(fd, 0, os.SEEK_SET)
            IOP.filedes = fd
            IOP.status = bareosfd.iostat_do_in_core
        return bareosfd.bRC_OK

    def io_read(self, IOP):
        if "read_delay" in self.options:
            time.sleep(float(self.options["read_delay"]))
        chunk = self.data[self.position:self.position + IOP.count]
        self.position += len(chunk)
        IOP.buf = bytearray(chunk)
        IOP.status = len(chunk)
        return bareosfd.bRC_OK

    def io_close(self, IOP):
        if self.options.get("direct_io") and IOP.filedes > 0:
            os.close(IOP.filedes)
        elif getattr(self, "out", None):
            self.out.close()
            self.out = None
        return bareosfd.bRC_OK

    def get_acl(self, acl):
        self.log("get_acl", fname=acl.fname)
        return bareosfd.bRC_OK

    def get_xattr(self, xattr):
        self.log("get_xattr", fname=xattr.fname)
        return bareosfd.bRC_OK

    def check_file(self, fname):
        self.log("check_file", fname=fname)
        return bareosfd.bRC_Seen if self.options.get("seen") else bareosfd.bRC_OK

    # ------------------------------------------------------------ restore
    def start_restore_file(self, cmd):
        self.log("start_restore_file", cmd=cmd)
        return bareosfd.bRC_OK

    def create_file(self, rp):
        self.log("create_file", ofname=rp.ofname, where=rp.where, replace=rp.replace,
                 create_status=rp.create_status, original=rp.original_file_name,
                 regexwhere=rp.regexwhere, type=rp.type)
        os.makedirs(os.path.dirname(rp.ofname), exist_ok=True)
        rp.create_status = bareosfd.CF_EXTRACT
        return bareosfd.bRC_OK

    def open_for_restore(self, IOP):
        self.log("open_for_restore", flags=IOP.flags, mode=IOP.mode)
        if self.options.get("direct_io"):
            IOP.filedes = os.open(IOP.fname, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            IOP.status = bareosfd.iostat_do_in_core
            return bareosfd.bRC_OK
        self.out = open(IOP.fname, "wb")
        return bareosfd.bRC_OK

    def io_write(self, IOP):
        self.out.write(IOP.buf)
        IOP.status = IOP.count
        return bareosfd.bRC_OK

    def set_file_attributes(self, rp):
        self.log("set_file_attributes", ofname=rp.ofname, create_status=rp.create_status)
        return bareosfd.bRC_OK

    def end_restore_file(self):
        self.log("end_restore_file")
        return bareosfd.bRC_OK


def export(module_globals, plugin_class):
    """Define the module-level entry points python-fd looks up."""
    state = {}

    def load_bareos_plugin(plugindef):
        state["plugin"] = plugin_class(plugindef)
        return bareosfd.bRC_OK
    module_globals["load_bareos_plugin"] = load_bareos_plugin
    for name in ("parse_plugin_definition", "handle_plugin_event", "start_backup_file",
                 "end_backup_file", "plugin_io", "get_acl", "get_xattr", "check_file",
                 "start_restore_file", "create_file", "set_file_attributes",
                 "end_restore_file"):
        module_globals[name] = (lambda n: lambda *a: getattr(state["plugin"], n)(*a))(name)
