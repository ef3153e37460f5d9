"""Pure-Python fake of the ``bareosfd`` C extension module (Python 3 API).

The emulator executes this file afresh for every job (the real daemon runs
each job in a new sub-interpreter), installs the result as
``sys.modules['bareosfd']`` and binds it to the running job with ``_bind``.
Constants and packet layouts follow the API (docs/emulator.md) section 3.
"""

import threading
import time

# --------------------------------------------------------------------------
# Constants: module attributes plus dicts keyed by bytes (API doc section 3).
# --------------------------------------------------------------------------

bRCs = {
    b"bRC_OK": 0, b"bRC_Stop": 1, b"bRC_Error": 2, b"bRC_More": 3,
    b"bRC_Term": 4, b"bRC_Seen": 5, b"bRC_Core": 6, b"bRC_Skip": 7,
    b"bRC_Cancel": 8,
}
bJobMessageType = {
    b"M_ABORT": 1, b"M_DEBUG": 2, b"M_FATAL": 3, b"M_ERROR": 4,
    b"M_WARNING": 5, b"M_INFO": 6, b"M_SAVED": 7, b"M_NOTSAVED": 8,
    b"M_SKIPPED": 9, b"M_MOUNT": 10, b"M_ERROR_TERM": 11, b"M_TERM": 12,
    b"M_RESTORED": 13, b"M_SECURITY": 14, b"M_ALERT": 15, b"M_VOLMGMT": 16,
}
bFileType = {
    b"FT_LNKSAVED": 1, b"FT_REGE": 2, b"FT_REG": 3, b"FT_LNK": 4,
    b"FT_DIREND": 5, b"FT_SPEC": 6, b"FT_NOACCESS": 7, b"FT_NOFOLLOW": 8,
    b"FT_NOSTAT": 9, b"FT_NOCHG": 10, b"FT_DIRNOCHG": 11, b"FT_ISARCH": 12,
    b"FT_NORECURSE": 13, b"FT_NOFSCHG": 14, b"FT_NOOPEN": 15, b"FT_RAW": 16,
    b"FT_FIFO": 17, b"FT_DIRBEGIN": 18, b"FT_INVALIDFS": 19,
    b"FT_INVALIDDT": 20, b"FT_REPARSE": 21, b"FT_PLUGIN": 22,
    b"FT_DELETED": 23, b"FT_BASE": 24, b"FT_RESTORE_FIRST": 25,
    b"FT_JUNCTION": 26, b"FT_PLUGIN_CONFIG": 27,
    b"FT_PLUGIN_CONFIG_FILLED": 28,
}
bCFs = {
    b"CF_SKIP": 1, b"CF_ERROR": 2, b"CF_EXTRACT": 3, b"CF_CREATED": 4,
    b"CF_CORE": 5,
}
bIOPS = {
    b"IO_OPEN": 1, b"IO_READ": 2, b"IO_WRITE": 3, b"IO_CLOSE": 4,
    b"IO_SEEK": 5,
}
bIOPstatus = {
    b"iostat_error": -1, b"iostat_do_in_plugin": 0, b"iostat_do_in_core": 1,
}
bLevels = {
    b"L_FULL": "F", b"L_INCREMENTAL": "I", b"L_DIFFERENTIAL": "D",
    b"L_SINCE": "S", b"L_VERIFY_CATALOG": "C", b"L_VERIFY_INIT": "V",
    b"L_VERIFY_VOLUME_TO_CATALOG": "O", b"L_VERIFY_DISK_TO_CATALOG": "d",
    b"L_VERIFY_DATA": "A", b"L_BASE": "B", b"L_NONE": " ",
    b"L_VIRTUAL_FULL": "f",
}
bEventType = {
    b"bEventJobStart": 1, b"bEventJobEnd": 2, b"bEventStartBackupJob": 3,
    b"bEventEndBackupJob": 4, b"bEventStartRestoreJob": 5,
    b"bEventEndRestoreJob": 6, b"bEventStartVerifyJob": 7,
    b"bEventEndVerifyJob": 8, b"bEventBackupCommand": 9,
    b"bEventRestoreCommand": 10, b"bEventEstimateCommand": 11,
    b"bEventLevel": 12, b"bEventSince": 13, b"bEventCancelCommand": 14,
    b"bEventRestoreObject": 15, b"bEventEndFileSet": 16,
    b"bEventPluginCommand": 17, b"bEventOptionPlugin": 18,
    b"bEventHandleBackupFile": 19, b"bEventNewPluginOptions": 20,
    b"bEventVssInitializeForBackup": 21, b"bEventVssInitializeForRestore": 22,
    b"bEventVssSetBackupState": 23, b"bEventVssPrepareForBackup": 24,
    b"bEventVssBackupAddComponents": 25, b"bEventVssPrepareSnapshot": 26,
    b"bEventVssCreateSnapshots": 27, b"bEventVssRestoreLoadComponentMetadata": 28,
    b"bEventVssRestoreSetComponentsSelected": 29, b"bEventVssCloseRestore": 30,
    b"bEventVssBackupComplete": 31,
}
bVariable = {
    b"bVarJobId": 1, b"bVarFDName": 2, b"bVarLevel": 3, b"bVarType": 4,
    b"bVarClient": 5, b"bVarJobName": 6, b"bVarJobStatus": 7,
    b"bVarSinceTime": 8, b"bVarAccurate": 9, b"bVarFileSeen": 10,
    b"bVarVssClient": 11, b"bVarWorkingDir": 12, b"bVarWhere": 13,
    b"bVarRegexWhere": 14, b"bVarExePath": 15, b"bVarVersion": 16,
    b"bVarDistName": 17, b"bVarPrevJobName": 18, b"bVarPrefixLinks": 19,
    b"bVarCheckChanges": 20, b"bVarUsedConfig": 21, b"bVarPluginPath": 22,
    b"bVarAccurateOptions": 23,
}
bAccurateOption = {
    b"bAccurateOptionInode": 1 << 0, b"bAccurateOptionPermissions": 1 << 1,
    b"bAccurateOptionNlink": 1 << 2, b"bAccurateOptionUid": 1 << 3,
    b"bAccurateOptionGid": 1 << 4, b"bAccurateOptionSize": 1 << 5,
    b"bAccurateOptionAtime": 1 << 6, b"bAccurateOptionMtime": 1 << 7,
    b"bAccurateOptionCtime": 1 << 8, b"bAccurateOptionSizeDecrease": 1 << 9,
    b"bAccurateOptionAlways": 1 << 10, b"bAccurateOptionMD5": 1 << 11,
    b"bAccurateOptionSha1": 1 << 12,
}

for _table in (bRCs, bJobMessageType, bFileType, bCFs, bIOPS, bIOPstatus,
               bLevels, bEventType, bVariable, bAccurateOption):
    for _name, _value in _table.items():
        globals()[_name.decode()] = _value
del _table, _name, _value

# --------------------------------------------------------------------------
# Packet classes: members emulate CPython PyMemberDef semantics.
# --------------------------------------------------------------------------

_WIDTHS = {"ushort": 16, "uint": 32, "ulonglong": 64}
_SIGNED = {"int": 32, "long": 64, "longlong": 64}


class _Member:
    """A typed member like a PyMemberDef entry (T_INT, T_BOOL, T_STRING, ...).

    Only a declaration: _PacketType turns the members of a class into ``__slots__`` (so, as on
    the C types, there is no ``__dict__`` and reads are plain member reads), and
    _Packet.__setattr__ checks every write.
    """

    def __init__(self, kind, default=None):
        self.kind = kind
        self.default = default


def _convert(kind, value):
    """Check/convert a value like PyMember_SetOne does for this type."""
    if kind == "object":
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise TypeError("attribute value type must be bool")
        return value
    if value is None or isinstance(value, float) or not hasattr(value, "__index__"):
        raise TypeError("an integer is required (got type %s)"
                        % type(value).__name__)
    value = value.__index__()
    if kind in _WIDTHS:
        return value % (1 << _WIDTHS[kind])
    bits = _SIGNED[kind]
    if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
        raise OverflowError("Python int too large to convert to C %s" % kind)
    return value


class _PacketType(type):
    """Collects a packet class's _Member declarations into ``__slots__``, ``_kinds`` (name ->
    kind, inherited ones included) and ``_defaults``.  A class that declares no member (a
    plugin's own subclass) gets no ``__slots__``, hence a ``__dict__``, as a subclass of a C
    type does; the C types themselves have none (unknown attributes raise AttributeError)."""

    def __new__(mcls, name, bases, namespace):
        members = {k: v for k, v in namespace.items() if isinstance(v, _Member)}
        if members:
            for key in members:
                del namespace[key]
            namespace["__slots__"] = tuple(members)
        cls = super().__new__(mcls, name, bases, namespace)
        kinds = dict(getattr(cls, "_kinds", {}))
        kinds.update((key, member.kind) for key, member in members.items())
        defaults = list(getattr(cls, "_defaults", ()))
        defaults += [(key, member.default) for key, member in members.items()]
        cls._kinds, cls._defaults = kinds, tuple(defaults)
        return cls


class _Packet(metaclass=_PacketType):
    """Base: keyword constructor over the declared members."""

    __slots__ = ()
    _kwmap = {}

    def __init__(self, **kwargs):
        self._set_defaults()
        for key, value in kwargs.items():
            name = self._kwmap.get(key, None if self._kwmap else key)
            kind = self._kinds.get(name)
            if kind is None:
                raise TypeError("'%s' is an invalid keyword argument for %s()"
                                % (key, type(self).__name__))
            if kind == "string":
                object.__setattr__(self, name, value)
            else:
                setattr(self, name, value)

    def _set_defaults(self):
        for name, value in self._defaults:
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        kind = self._kinds.get(name)
        if kind == "string":
            raise TypeError("readonly attribute")
        if kind is not None:
            value = _convert(kind, value)
        object.__setattr__(self, name, value)

    def __repr__(self):
        fields = ", ".join("%s=%r" % (n, getattr(self, n)) for n in self._kinds)
        return "<%s:%s>" % (type(self).__name__, fields)


def _force(packet, **values):
    """C side: fill members, including read-only T_STRING ones."""
    setter = object.__setattr__
    for name, value in values.items():
        setter(packet, name, value)
    return packet


class StatPacket(_Packet):
    st_dev = _Member("uint", 0)
    st_ino = _Member("ulonglong", 0)
    st_mode = _Member("ushort", 0o100700)
    st_nlink = _Member("ushort", 0)
    st_uid = _Member("uint", 0)
    st_gid = _Member("uint", 0)
    st_rdev = _Member("uint", 0)
    st_size = _Member("ulonglong", (1 << 64) - 1)
    st_atime = _Member("long", 0)
    st_mtime = _Member("long", 0)
    st_ctime = _Member("long", 0)
    st_blksize = _Member("uint", 4096)
    st_blocks = _Member("ulonglong", 1)
    _kwmap = {k: "st_" + k for k in (
        "dev", "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "atime",
        "mtime", "ctime", "blksize", "blocks")}

    def _set_defaults(self):
        super()._set_defaults()
        now = int(time.time())
        self.st_atime = self.st_mtime = self.st_ctime = now


class SavePacket(_Packet):
    fname = _Member("object")
    link = _Member("object")
    statp = _Member("object")
    type = _Member("int", 0)
    flags = _Member("object")
    no_read = _Member("bool", False)
    portable = _Member("bool", False)
    accurate_found = _Member("bool", False)
    cmd = _Member("string")
    save_time = _Member("uint", 0)
    delta_seq = _Member("uint", 0)
    object_name = _Member("object")
    object = _Member("object")
    object_len = _Member("int", 0)
    object_index = _Member("int", 0)


class RestorePacket(_Packet):
    stream = _Member("int", 0)
    data_stream = _Member("int", 0)
    type = _Member("int", 0)
    file_index = _Member("int", 0)
    linkFI = _Member("int", 0)
    uid = _Member("uint", 0)
    statp = _Member("object")
    attrEX = _Member("string")
    ofname = _Member("string")
    olname = _Member("string")
    where = _Member("string")
    regexwhere = _Member("string")
    replace = _Member("int", 0)
    create_status = _Member("int", 0)
    filedes = _Member("longlong", 0)
    original_file_name = _Member("string")
    original_link_name = _Member("string")


class IoPacket(_Packet):
    func = _Member("ushort", 0)
    count = _Member("int", 0)
    flags = _Member("int", 0)
    mode = _Member("int", 0)
    buf = _Member("object")
    fname = _Member("string")
    status = _Member("int", 0)
    io_errno = _Member("int", 0)
    lerror = _Member("int", 0)
    whence = _Member("int", 0)
    offset = _Member("longlong", 0)
    win32 = _Member("bool", False)
    filedes = _Member("longlong", 0)


class AclPacket(_Packet):
    fname = _Member("string")
    content = _Member("object")


class XattrPacket(_Packet):
    fname = _Member("string")
    name = _Member("object")
    value = _Member("object")


class RestoreObject(_Packet):
    object_name = _Member("object")
    object = _Member("object")
    plugin_name = _Member("string")
    object_type = _Member("int", 0)
    object_len = _Member("int", 0)
    object_full_len = _Member("int", 0)
    object_index = _Member("int", 0)
    object_compression = _Member("int", 0)
    stream = _Member("int", 0)
    jobid = _Member("uint", 0)


# --------------------------------------------------------------------------
# Job binding and the thread rule (real-fd-trace 8c).
# --------------------------------------------------------------------------

_runtime = None          # the emulator's job object while a job runs
_threads = set()         # idents of threads that entered a callback (thread_local ctx)
_lock = threading.Lock()


def _bind(runtime):
    """Attach this module copy to a running job (emulator use only)."""
    global _runtime
    _runtime = runtime


def _unbind():
    global _runtime
    _runtime = None
    with _lock:
        _threads.clear()


def _enter_callback():
    """The core sets the thread-local plugin context on every entry point."""
    with _lock:
        _threads.add(threading.get_ident())


def _ctx(where):
    """Return the job runtime or raise like bareosfd.cc does."""
    runtime = _runtime
    if runtime is None or threading.get_ident() not in _threads:
        raise RuntimeError(
            "core/src/plugins/filed/python/module/bareosfd.cc:%s: plugin_ctx is unset"
            " (bareosfd.%s called outside a job or from a thread that is not the"
            " job thread; real-fd-trace 8c)" % (where, _fn_name(where)))
    return runtime


def _fn_name(where):
    return {1324: "GetValue", 1528: "JobMessage"}.get(where, "function")


def _int_arg(value, fn):
    """PyArg_ParseTuple 'i': ints (and __index__ objects) only."""
    if value is None or isinstance(value, float) or not hasattr(value, "__index__"):
        raise TypeError("%s: an integer is required (got type %s)"
                        % (fn, type(value).__name__))
    return value.__index__()


# --------------------------------------------------------------------------
# Functions (API doc section 3, "Functions").
# --------------------------------------------------------------------------

def GetValue(var):
    var = _int_arg(var, "GetValue")
    return _ctx(1324).get_value(var)


def SetValue(var, value):
    var = _int_arg(var, "SetValue")
    return _ctx(1361).set_value(var, value)


def JobMessage(type, msg=None):
    type = _int_arg(type, "JobMessage")
    if msg is not None and not isinstance(msg, str):
        raise TypeError("JobMessage() argument 2 must be str or None")
    runtime = _ctx(1528)
    if msg is not None:
        runtime.plugin_job_message(type, msg)
    return None


def DebugMessage(level, msg=None):
    level = _int_arg(level, "DebugMessage")
    if msg is not None and not isinstance(msg, str):
        raise TypeError("DebugMessage() argument 2 must be str or None")
    runtime = _ctx(1504)
    if msg is not None:
        runtime.plugin_debug_message(level, msg)
    return None


def RegisterEvents(events):
    runtime = _ctx(1545)
    runtime.register_events([_int_arg(e, "RegisterEvents") for e in events], True)
    return bRC_OK


def UnRegisterEvents(events):
    runtime = _ctx(1586)
    runtime.register_events([_int_arg(e, "UnRegisterEvents") for e in events], False)
    return bRC_OK


def GetInstanceCount():
    _ctx(1625)
    return 1


def _noop(name):
    def function(*args):
        _ctx(1650)
        _runtime.note_call(name, args)
        return bRC_OK
    function.__name__ = name
    return function


AddExclude = _noop("AddExclude")
AddInclude = _noop("AddInclude")
AddOptions = _noop("AddOptions")
AddRegex = _noop("AddRegex")
AddWild = _noop("AddWild")
NewOptions = _noop("NewOptions")
NewInclude = _noop("NewInclude")
NewPreInclude = _noop("NewPreInclude")


def CheckChanges(savepkt):
    runtime = _ctx(1767)
    return runtime.plugin_check_changes(savepkt)


def AcceptFile(savepkt):
    _ctx(1785)
    return bRC_OK


def SetSeenBitmap(all, fname=None):
    runtime = _ctx(1804)
    return runtime.set_seen(all, fname, True)


def ClearSeenBitmap(all, fname=None):
    runtime = _ctx(1856)
    return runtime.set_seen(all, fname, False)
