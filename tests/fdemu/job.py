"""One running job: messages, status, GetValue/SetValue and callback calls.

``JobRuntime`` is what the fake ``bareosfd`` module is bound to, and what the
backup/restore/estimate sequences use to call into the plugin module.
"""

import os
import threading
import time
import traceback
from dataclasses import dataclass, field

from .catalog import FileRecord

# Constants used by the core side (same values as bareosfd, API doc section 3).
bRC_OK, bRC_Stop, bRC_Error, bRC_More = 0, 1, 2, 3
bRC_Seen, bRC_Skip = 5, 7
M_ABORT, M_FATAL, M_ERROR, M_WARNING, M_INFO = 1, 3, 4, 5, 6
M_NOTSAVED, M_SKIPPED, M_RESTORED, M_ERROR_TERM = 8, 9, 13, 11
UNDEFINED_RETURN = -1          # PYTHON_UNDEFINED_RETURN_VALUE

# Events that newPlugin() registers itself (API doc section 2).
DEFAULT_EVENTS = {12, 13, 20, 17, 1, 10, 11, 9, 15}

LOGPREFIX = "python3-fd-mod: "


class EmulatorError(AssertionError):
    """The plugin did something the real bareos-fd would not survive."""


@dataclass
class JobResult:
    """What a job did; ``status`` is T, W, f or A (trace sections 1-7)."""

    jobid: int
    job_type: str                 # 'B' backup, 'R' restore, 'E' estimate
    level: str
    status: str = "T"
    messages: list = field(default_factory=list)    # (type_int, text)
    errors: int = 0
    warnings: int = 0
    fatal: bool = False
    calls: list = field(default_factory=list)       # (callback, info)
    files: list = field(default_factory=list)       # FileRecord
    deleted: list = field(default_factory=list)     # fnames
    summary: dict = field(default_factory=dict)
    emulator_errors: list = field(default_factory=list)
    listing: list = field(default_factory=list)     # estimate listing lines
    since: int = 0
    job_name: str = ""
    job_thread_cpu: float = 0.0   # CPU seconds of the job thread (emulated core + plugin calls)
    plugin_cpu: float = 0.0       # of which inside the plugin's callbacks (benchmarks)

    @property
    def ok(self):
        return self.status in ("T", "W")

    def texts(self, mtype=None):
        """Message texts, optionally only those of one type."""
        return [t for m, t in self.messages if mtype is None or m == mtype]

    def call_names(self, core=False):
        """Names of the plugin entry points called, in order. Emulator notes
        ("core:..." and "bareosfd....") only with core=True."""
        return [name for name, _ in self.calls
                if core or not (name.startswith("core:") or "." in name)]

    def file(self, fname):
        for record in self.files:
            if record.fname == fname:
                return record
        raise KeyError(fname)


class JobRuntime:
    """State of the running job plus the plumbing to call the plugin."""

    def __init__(self, daemon, result, fake, *, job_type_char, level, since=0,
                 accurate=False, where=None, unique_name="", prev_job_name=""):
        self.daemon = daemon
        self.result = result
        self.fake = fake                    # this job's bareosfd module copy
        self.module = None                  # the plugin module once loaded
        self.loaded = False                 # python_loaded
        self.default_path_set = False       # python_default_path_is_set
        self.path_set = False               # python_path_is_set (module_path inserted once)
        self.module_path = None             # plugin_priv_ctx->module_path
        self.module_name = None             # plugin_priv_ctx->module_name
        self.plugin_options = None          # plugin_priv_ctx->plugin_options: the raw string
                                            # of the last bEventNewPluginOptions
        self.type_char = job_type_char
        self.level = level
        self.since = since
        self.accurate = accurate
        self.accurate_visible = False
        self.accurate_options = frozenset()
        self.where = where
        self.unique_name = unique_name
        self.prev_job_name = prev_job_name
        self.phase_status = "C"
        self.check_changes = True
        self.events = set(DEFAULT_EVENTS)
        self.canceled = False
        self.previous = {}                  # accurate list: fname -> FileRecord
        self.has_accurate_list = False
        self.seen = set()
        self.lock = threading.RLock()
        self._tls = threading.local()

    @property
    def raised(self):
        """Whether the last call() on this thread raised."""
        return getattr(self._tls, "raised", False)

    @raised.setter
    def raised(self, value):
        self._tls.raised = value

    # ---------------------------------------------------------------- status
    @property
    def stopped(self):
        """jcr->IsJobCanceled(): canceled or fatal."""
        return self.canceled or self.result.fatal

    def job_status(self):
        if self.canceled:
            return "A"
        if self.result.fatal:
            return "f"
        return self.phase_status

    def final_status(self):
        if self.canceled:
            return "A"
        if self.result.fatal:
            return "f"
        return "W" if self.result.errors else "T"

    # -------------------------------------------------------------- messages
    def message(self, mtype, text):
        """Jmsg: record a job message and apply its effect (lib/message.cc)."""
        with self.lock:
            self.result.messages.append((mtype, text))
            if mtype == M_FATAL:
                self.result.fatal = True
            elif mtype == M_ERROR:
                self.result.errors += 1
            elif mtype == M_WARNING:
                self.result.warnings += 1
            elif mtype in (M_ABORT, M_ERROR_TERM):
                self.result.fatal = True
                self.emulator_error("message type %d would terminate bareos-fd: %r"
                                    % (mtype, text))

    def emulator_error(self, text):
        with self.lock:
            self.result.emulator_errors.append(text)

    def trace(self, name, info=""):
        with self.lock:
            self.result.calls.append((name, info))

    # ----------------------------------------------- callbacks into the plugin
    def call(self, name, *args, info="", on_enter=None):
        """Call a module-level entry point like python-fd does.

        Returns the bRC as int. A missing function gives bRC_Error; an
        exception gives M_FATAL with the traceback and bRC_Error;
        ``self.raised`` tells whether the last call raised. ``on_enter`` runs
        just before the plugin function (used to start a cancel).
        """
        self.raised = False
        self.fake._enter_callback()
        func = getattr(self.module, name, None) if self.module else None
        if not callable(func):
            self.trace("core:missing", "%s: returns bRC_Error" % name)
            return bRC_Error
        self.trace(name, info)
        if on_enter:
            on_enter()
        started = time.thread_time()
        try:
            value = func(*args)
        except BaseException as exc:   # PyErr_Occurred catches everything
            self.raised = True
            self.python_error(exc)
            return bRC_Error
        finally:
            self.result.plugin_cpu += time.thread_time() - started
        return self.to_brc(name, value)

    def python_error(self, exc):
        """PyErrorHandler(M_FATAL): 'bareosfd: Traceback ...'."""
        text = "".join(traceback.format_exception(exc))
        self.message(M_FATAL, "bareosfd: %s" % text)

    def to_brc(self, name, value):
        """ConvertPythonRetvalTobRCRetval: PyLong_AsLong."""
        if isinstance(value, int):
            return int(value)
        if value is not None and hasattr(value, "__index__"):
            return value.__index__()
        self.trace("core:return", "%s returned %s: PyLong_AsLong gives -1"
                   % (name, type(value).__name__))
        if name == "load_bareos_plugin":
            self.message(M_FATAL, "bareosfd: TypeError: load_bareos_plugin returned %s, "
                         "not an int (PyLong_AsLong fails; fdemu treats this as "
                         "fatal)\n" % type(value).__name__)
        return UNDEFINED_RETURN

    def event(self, number):
        """GeneratePluginEvent: only registered events, not once the job is
        canceled/fatal except for EndBackupJob(4)/EndRestoreJob(6)."""
        if number not in (4, 6, 8) and self.stopped:
            return None
        if not self.loaded or number not in self.events:
            return None
        return self.call("handle_plugin_event", number, info="event %d" % number)

    # ------------------------------------------------- bareosfd module hooks
    def get_value(self, var):
        if var == 20:
            msg = ("GetValue(bVarCheckChanges) called: the real bareos-fd returns "
                   "Py_True/Py_False without a reference and aborts after a few "
                   "dozen calls (real-fd-trace section 0). Never call it.")
            self.emulator_error(msg)
            raise EmulatorError(msg)
        daemon = self.daemon
        values = {
            1: self.result.jobid, 2: daemon.fd_name, 3: ord(self.level),
            4: ord(self.type_char), 5: daemon.client_name, 6: self.unique_name,
            7: ord(self.job_status()), 8: self.since,
            9: 1 if self.accurate_visible else 0, 12: daemon.workdir,
            13: self.where, 14: None, 15: daemon.exe_path,
            16: daemon.version, 18: self.prev_job_name, 19: 0,
            21: daemon.config_dir, 23: self.accurate_options,
        }
        return values.get(var)

    def set_value(self, var, value):
        if var == 8:
            self.since = _as_long(value)
            return bRC_OK
        if var == 20:
            self.check_changes = value is True
            return bRC_OK
        if var == 10:
            if not isinstance(value, str):
                raise TypeError("bad argument type for built-in operation")
            self.seen.add(value)
            return bRC_OK
        return bRC_Error

    def plugin_job_message(self, mtype, msg):
        self.message(mtype, LOGPREFIX + msg)

    def plugin_debug_message(self, level, msg):
        self.trace("bareosfd.DebugMessage", "%d %s" % (level, msg.rstrip("\n")))

    def register_events(self, numbers, on):
        for number in numbers:
            if 1 <= number <= 31:
                (self.events.add if on else self.events.discard)(number)

    def note_call(self, name, args):
        self.trace("bareosfd." + name, repr(args))

    def plugin_check_changes(self, savepkt):
        from .backup import check_changes   # shared with the core path
        changed = check_changes(self, savepkt, self.since)
        return bRC_OK if changed else bRC_Seen

    def set_seen(self, all_files, fname, seen):
        if all_files:
            (self.seen.update if seen else self.seen.difference_update)(self.previous)
        elif fname is not None:
            (self.seen.add if seen else self.seen.discard)(fname)
        return bRC_OK

    # ---------------------------------------------------------------- files
    def new_record(self, fname, ftype, statp, link="", plugin=""):
        record = FileRecord(fname=fname, type=ftype, statp=statp, link=link,
                            jobid=self.result.jobid, plugin=plugin,
                            workdir=self.daemon.workdir)
        self.result.files.append(record)
        return record


def _as_long(value):
    if isinstance(value, int):
        return int(value)
    if value is not None and hasattr(value, "__index__"):
        return value.__index__()
    raise TypeError("an integer is required (got type %s)" % type(value).__name__)


def strerror(errno_value):
    """The text bareos puts after ERR= (strerror; 0 gives 'Success')."""
    return os.strerror(errno_value)
