"""Tests of the bareos-fd emulator itself (tests/fdemu), with tiny fake plugins.

The expected sequences are those of real-fd-trace and
the API (docs/emulator.md); section numbers are given per test.
"""

import glob
import hashlib
import json
import os
import re
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fdemu import EmulatorError, FileDaemon  # noqa: E402
from fdemu.daemon import EmulatorJobError, _new_bareosfd  # noqa: E402
from fdemu.catalog import FileRecord, VolumeWriter  # noqa: E402
from fdemu.plugin_string import (PluginDefinitionError, output_name,  # noqa: E402
                                 parse_definition)

PLUGINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fdemu", "testplugins")
B_BIN = "/@trace/bkt/dir/b.bin"
NAMES = ["/@trace/bkt/a.txt", "/@trace/bkt/c.txt", "/@trace/bkt/d.txt", B_BIN,
         "/@trace/bkt/empty"]
M_FATAL, M_ERROR, M_INFO = 3, 4, 6


def plugin(tmp_path, module="bareos-fd-memfiles", **options):
    options.setdefault("log", str(tmp_path / "log.jsonl"))
    extra = "".join(":%s=%s" % item for item in options.items())
    return "python3:module_path=%s:module_name=%s%s" % (PLUGINS, module, extra)


def read_log(tmp_path):
    path = tmp_path / "log.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return [json.loads(line) for line in lines]


def write_files(tmp_path, specs):
    path = tmp_path / "files.json"
    path.write_text(json.dumps(specs))
    return str(path)


def trace_specs(**changes):
    specs = [{"fname": "/@trace/bkt/a.txt", "data": "hello world"},
             {"fname": "/@trace/bkt/c.txt", "size": 100},
             {"fname": "/@trace/bkt/d.txt", "size": 200},
             {"fname": B_BIN, "size": 1572864},
             {"fname": "/@trace/bkt/empty", "data": ""}]
    for spec in specs:
        spec.update(mtime=1700000000, ctime=1700000000)
        spec.update(changes.get(spec["fname"], {}))
    return [s for s in specs if not s.get("drop")]


@pytest.fixture
def fd(tmp_path):
    return FileDaemon(str(tmp_path / "work"))


def per_file_calls(reads):
    return (["start_backup_file", "plugin_io"] + ["plugin_io"] * reads +
            ["plugin_io", "get_acl", "get_xattr", "end_backup_file"])


# ------------------------------------------------------------ bareosfd fake
def test_constants_are_attributes_and_bytes_keyed_dicts():
    bfd = _new_bareosfd()
    assert bfd.bRCs[b"bRC_OK"] == bfd.bRC_OK == 0
    assert bfd.bRC_Skip == 7 and bfd.bRC_Cancel == 8
    assert bfd.bIOPstatus[b"iostat_do_in_core"] == bfd.iostat_do_in_core == 1
    assert bfd.iostat_do_in_plugin == 0 and bfd.iostat_error == -1
    assert bfd.bFileType[b"FT_REG"] == 3 and bfd.FT_RESTORE_FIRST == 25
    assert bfd.bCFs[b"CF_EXTRACT"] == 3 and bfd.CF_CORE == 5
    assert bfd.bEventType[b"bEventEndFileSet"] == 16 and bfd.bEventCancelCommand == 14
    assert bfd.bVariable[b"bVarCheckChanges"] == 20 and bfd.bVarAccurateOptions == 23
    assert bfd.bLevels[b"L_INCREMENTAL"] == "I" and bfd.M_FATAL == 3
    assert bfd.IO_OPEN == 1 and bfd.IO_SEEK == 5


def test_packets_follow_cpython_member_rules():
    bfd = _new_bareosfd()
    st = bfd.StatPacket()
    assert st.st_mode == 0o100700 and st.st_nlink == 0 and st.st_blksize == 4096
    assert st.st_size == 2 ** 64 - 1 and st.st_blocks == 1
    assert abs(st.st_mtime - __import__("time").time()) < 5
    st = bfd.StatPacket(size=12, mtime=5, mode=0o100644)
    assert (st.st_size, st.st_mtime, st.st_mode) == (12, 5, 0o100644)
    with pytest.raises(TypeError):
        bfd.StatPacket(st_size=1)
    iop = bfd.IoPacket()
    with pytest.raises(TypeError):
        iop.fname = "x"                     # T_STRING is read-only
    sp = bfd.SavePacket()
    with pytest.raises(TypeError):
        sp.cmd = "x"
    with pytest.raises(TypeError):
        sp.no_read = 1                      # T_BOOL needs a bool
    sp.no_read = True
    with pytest.raises(TypeError):
        sp.type = "3"
    sp.fname = b"anything goes into T_OBJECT"
    with pytest.raises(AttributeError):
        sp.fnmae = "/b/k"                   # a C type has no __dict__: a typo is an error

    class Mine(bfd.SavePacket):             # tp_new is generic and subclasses get a __dict__
        pass

    mine = Mine()
    mine.note = "kept"
    assert mine.note == "kept" and mine.type == 0 and mine.fname is None
    with pytest.raises(TypeError):
        mine.cmd = "x"


def test_functions_outside_a_job_raise():
    bfd = _new_bareosfd()
    with pytest.raises(RuntimeError, match="plugin_ctx is unset"):
        bfd.GetValue(bfd.bVarJobId)
    with pytest.raises(RuntimeError, match="plugin_ctx is unset"):
        bfd.JobMessage(bfd.M_INFO, "x\n")


def test_plugin_string_parsing():
    d = parse_definition("python3:module_path=/a\\:b:module_n=mod:k=v\\:w:x=1")
    assert (d.module_path, d.module_name, d.options) == ("/a:b", "mod", "k=v\\:w:x=1:")
    assert parse_definition("python3:module_name=m").options == ""
    with pytest.raises(PluginDefinitionError, match="without value"):
        parse_definition("python3:module_name=m:novalue")
    with pytest.raises(PluginDefinitionError):
        parse_definition("python3")


def test_output_names():
    assert output_name("/@X/a", "/tmp/r") == "/tmp/r/@X/a"
    assert output_name("@PYLIBCLOUD:/b/k", "/tmp/r") == "/tmp/r/@PYLIBCLOUD:/b/k"
    assert output_name("/@X/a", "/tmp/r/") == "/tmp/r//@X/a"
    assert output_name("@X/a", "/tmp/r/") == "/tmp/r/@X/a"
    assert output_name("/@X/a", "") == "/@X/a"
    assert output_name("/@trace/bkt/a.txt", None, "!/@trace/bkt!/tmp/rx!") == "/tmp/rx/a.txt"


# ------------------------------------------------------------------ backup
def test_full_backup_sequence_and_catalog(fd, tmp_path):
    result = fd.backup(plugin(tmp_path))
    assert result.status == "T" and not result.messages
    expected = (["load_bareos_plugin", "parse_plugin_definition", "handle_plugin_event",
                 "handle_plugin_event", "parse_plugin_definition"]
                + per_file_calls(2) + per_file_calls(2) + per_file_calls(2)
                + per_file_calls(7) + per_file_calls(1)
                + ["handle_plugin_event", "handle_plugin_event"])
    assert result.call_names() == expected
    events = [info for name, info in result.calls if name == "handle_plugin_event"]
    assert events == ["event 16", "event 3", "event 4", "event 2"]
    assert [f.fname for f in result.files] == NAMES
    b = result.file(B_BIN)
    assert list(b.record_sizes()) == [262144] * 6
    assert hashlib.md5(b.read_bytes()).hexdigest() == b.md5
    assert result.file("/@trace/bkt/empty").md5_base64 == "1B2M2Y8AsgTpgAmY7PhCfg"
    assert result.summary["files_written"] == 5
    log = read_log(tmp_path)
    assert log[0]["call"] == "__init__" and log[0]["plugindef"].endswith(".jsonl:")
    assert (log[0]["status"], log[0]["type"]) == ("C", "I")
    event3 = next(e for e in log if e.get("event") == 3)
    assert (event3["status"], event3["type"]) == ("B", "B")
    assert next(e for e in log if e.get("event") == 4)["status"] == "T"
    assert all(e["job_thread"] for e in log)
    reads = [e["count"] for e in log if e.get("func") == "IO_READ"]
    assert set(reads) == {262144}


def test_state_persists_in_workdir(fd, tmp_path):
    first = fd.backup(plugin(tmp_path))
    again = FileDaemon(fd.workdir)
    result = again.backup(plugin(tmp_path), level="I")
    assert result.level == "I"
    assert result.since == fd.jobs()[0]["start_time"]
    assert set(again.current_state()) == set(NAMES)
    assert again.current_state()[B_BIN].read_bytes() == first.file(B_BIN).read_bytes()


def test_incremental_without_full_becomes_full(fd, tmp_path):
    result = fd.backup(plugin(tmp_path), level="I")
    assert result.level == "F" and "Doing FULL backup" in result.texts(M_INFO)[0]


def test_incremental_not_accurate_uses_mtime_ctime_and_save_time(fd, tmp_path):
    files = write_files(tmp_path, trace_specs())
    fd.backup(plugin(tmp_path, files=files))
    since = 1800000000
    files = write_files(tmp_path, trace_specs(**{
        "/@trace/bkt/a.txt": {"mtime": since},
        "/@trace/bkt/d.txt": {"ctime": since + 5},
        B_BIN: {"save_time": 1600000000},
        "/@trace/bkt/c.txt": {"drop": True}}))
    result = fd.backup(plugin(tmp_path, files=files), level="I", since=since)
    saved = [f.fname for f in result.files if f.cataloged]
    assert saved == ["/@trace/bkt/a.txt", "/@trace/bkt/d.txt", B_BIN]
    assert not result.deleted and "check_file" not in result.call_names()
    assert result.call_names()[5:7] == ["start_backup_file", "plugin_io"]


def test_incremental_accurate_compares_and_records_deletions(fd, tmp_path):
    files = write_files(tmp_path, trace_specs())
    fd.backup(plugin(tmp_path, files=files), accurate=True)
    log = read_log(tmp_path)
    specs = trace_specs(**{"/@trace/bkt/a.txt": {"data": "hello world!",
                                                  "mtime": 1700000100},
                           "/@trace/bkt/c.txt": {"drop": True}})
    specs.append({"fname": "/@trace/bkt/new-old.txt", "data": "x", "mtime": 1600000000,
                  "ctime": 1600000000})
    files = write_files(tmp_path, specs)
    result = fd.backup(plugin(tmp_path, files=files), level="I", accurate=True)
    assert [f.fname for f in result.files if f.cataloged and not f.deleted] == [
        "/@trace/bkt/a.txt", "/@trace/bkt/new-old.txt"]
    assert result.deleted == ["/@trace/bkt/c.txt"]
    names = result.call_names()
    assert names[names.index("check_file") + 1:] == ["handle_plugin_event"] * 2
    log = read_log(tmp_path)
    assert log[0]["level"] == "I"
    state = fd.current_state()
    assert "/@trace/bkt/c.txt" not in state
    assert state["/@trace/bkt/a.txt"].read_bytes() == b"hello world!"
    assert state[B_BIN].jobid == 1
    # bRC_Seen from check_file keeps the name
    result = fd.backup(plugin(tmp_path, files=files, seen=1), level="I", accurate=True)
    assert not result.deleted


def test_estimate_has_no_io_and_no_events_3_4(fd, tmp_path):
    result = fd.estimate(plugin(tmp_path))
    assert result.jobid == 0 and result.status == "T"
    assert result.call_names() == (
        ["load_bareos_plugin", "parse_plugin_definition", "handle_plugin_event",
         "parse_plugin_definition"] + ["start_backup_file", "end_backup_file"] * 5
        + ["handle_plugin_event"])
    assert result.summary["files"] == 5 and result.summary["bytes"] == 1573175
    assert re.match(r"-rw-r--r--\s+1 \S+\s+\S+\s+11 \d{4}-\d\d-\d\d [\d:]{8}  "
                    r"/@trace/bkt/a.txt$", result.listing[0])
    log = read_log(tmp_path)
    assert log[-1]["event"] == 2 and log[-1]["status"] == "R"
    assert not fd.jobs()


def test_direct_io_in_core(fd, tmp_path):
    result = fd.backup(plugin(tmp_path, direct_io=1))
    assert result.status == "T"
    assert "IO_READ" not in " ".join(info for _, info in result.calls)
    assert result.file(B_BIN).size == 1572864
    restored = fd.restore(where=str(tmp_path / "r"))
    assert restored.summary["bytes_restored"] == 1573175
    assert (tmp_path / "r" / "@trace/bkt/a.txt").read_bytes() == b"hello world"


# ----------------------------------------------------------------- restore
def test_restore_sequence_and_data(fd, tmp_path):
    backup = fd.backup(plugin(tmp_path))
    read_log(tmp_path)
    where = str(tmp_path / "restores")
    result = fd.restore(where=where)
    assert result.status == "T" and result.summary["files_restored"] == 5
    per_file = ["parse_plugin_definition", "start_restore_file", "create_file", "plugin_io"]
    names = result.call_names()
    assert names[:1] == ["load_bareos_plugin"]
    assert names[1:9] == per_file + ["plugin_io", "set_file_attributes", "plugin_io",
                                     "end_restore_file"]
    assert names[-2:] == ["handle_plugin_event"] * 2
    empty = [e for e in read_log(tmp_path)]
    creates = [e for e in empty if e["call"] == "create_file"]
    assert creates[0]["ofname"] == where + "/@trace/bkt/a.txt"
    assert creates[0]["create_status"] == 2 and creates[0]["replace"] == ord("a")
    assert creates[0]["original"] == "/@trace/bkt/a.txt"
    opens = [e for e in empty if e["call"] == "open_for_restore"]
    assert opens[0]["flags"] == 577 and opens[0]["mode"] == 0o600
    writes = [info for name, info in result.calls if info.startswith("IO_WRITE")]
    assert len([w for w in writes if w.endswith("b.bin")]) == 6
    assert not any(w.endswith("empty") for w in writes)
    for record in backup.files:
        path = where + record.fname
        assert open(path, "rb").read() == record.read_bytes()


def test_restore_where_regexwhere_replace_and_cf_skip(fd, tmp_path):
    fd.backup(plugin(tmp_path, module="bareos-fd-misbehave", mode="cf_skip"))
    read_log(tmp_path)
    result = fd.restore(where="", replace="ifnewer", files=["/@trace/bkt/a.txt"])
    assert result.summary == {"files_restored": 1, "bytes_restored": 0}
    assert "plugin_io" not in result.call_names()
    create = [e for e in read_log(tmp_path) if e["call"] == "create_file"][0]
    assert create["ofname"] == "/@trace/bkt/a.txt" and create["where"] == ""
    assert create["replace"] == ord("w")
    fd.restore(regexwhere="!/@trace/bkt!/tmp/bareos-rx!", replace="never")
    create = [e for e in read_log(tmp_path) if e["call"] == "create_file"][0]
    assert create["ofname"] == "/tmp/bareos-rx/a.txt"
    assert create["where"] is None and create["regexwhere"] is None


# ------------------------------------------------------------------ cancel
def test_cancel_delivers_event_14_on_another_thread(fd, tmp_path):
    result = fd.backup(plugin(tmp_path, read_delay=0.05), cancel_after_reads=5)
    assert result.status == "A"
    log = read_log(tmp_path)
    cancel = next(e for e in log if e.get("event") == 14)
    assert not cancel["job_thread"] and cancel["status"] == "R"
    # the 5th read (d.txt's data) was in flight; then one more read, close, end
    assert result.calls[-6:] == [
        ("plugin_io", "IO_READ /@trace/bkt/d.txt"), ("handle_plugin_event", "event 14"),
        ("plugin_io", "IO_READ /@trace/bkt/d.txt"), ("plugin_io", "IO_CLOSE"),
        ("end_backup_file", "/@trace/bkt/d.txt"), ("handle_plugin_event", "event 4")]
    assert log[-1]["event"] == 4 and log[-1]["status"] == "A"
    assert not any(e.get("event") == 2 for e in log)
    assert fd.jobs()[-1]["files"] == [] and fd.current_state() == {}


def test_cancel_after_seconds_arrives_during_whatever_callback_runs(fd, tmp_path):
    started = time.monotonic()
    result = fd.backup(plugin(tmp_path, read_delay=0.2), cancel_after_seconds=0.5)
    assert result.status == "A"
    assert time.monotonic() - started < 5
    log = read_log(tmp_path)
    cancel = next(e for e in log if e.get("event") == 14)
    assert not cancel["job_thread"] and cancel["status"] == "R"
    assert log[-1]["event"] == 4 and log[-1]["status"] == "A"
    assert not any(e.get("event") == 2 for e in log)
    assert fd.jobs()[-1]["files"] == [] and not result.emulator_errors


# ------------------------------------------------------- errors (trace 7)
def misbehave(fd, tmp_path, mode, **kwargs):
    result = fd.backup(plugin(tmp_path, module="bareos-fd-misbehave", mode=mode), **kwargs)
    return result, result.call_names()


def test_raise_in_start_backup_file(fd, tmp_path):
    result, names = misbehave(fd, tmp_path, "raise_start2")
    assert result.status == "f" and result.fatal
    assert names[-2:] == ["start_backup_file", "handle_plugin_event"]
    assert result.calls[-1][1] == "event 4"
    fatal = result.texts(M_FATAL)
    assert fatal[0].startswith("bareosfd: Traceback (most recent call last):")
    assert "RuntimeError: boom in start_backup_file" in fatal[0]
    assert "startBackupFile failed" in fatal[1]


def test_raise_in_io_read(fd, tmp_path):
    result, names = misbehave(fd, tmp_path, "raise_read2")
    assert result.status == "f"
    assert names[-6:] == ["plugin_io", "plugin_io", "get_acl", "get_xattr",
                          "end_backup_file", "handle_plugin_event"]
    assert [info for _, info in result.calls[-6:-4]] == [
        "IO_READ /@trace/bkt/c.txt", "IO_CLOSE"]
    assert "Read error on file /@trace/bkt/c.txt. ERR=Success\n" in result.texts(M_ERROR)


def test_status_minus_one_is_an_error_and_the_job_goes_on(fd, tmp_path):
    result, names = misbehave(fd, tmp_path, "status_minus1")
    assert result.status == "W" and result.errors == 1
    assert result.texts(M_ERROR) == [
        "Read error on file /@trace/bkt/c.txt. ERR=Input/output error\n"]
    assert len([r for r in result.files if r.cataloged]) == 5


def test_read_error_keeps_truncated_md5_trap(fd, tmp_path):
    result, _ = misbehave(fd, tmp_path, "fail_after_512k")
    record = result.file(B_BIN)
    assert record.cataloged and record.read_error
    assert record.statp["st_size"] == 1572864 and record.size == 524288
    assert record.md5 == hashlib.md5(record.read_bytes()).hexdigest()
    assert "ERR=Permission denied" in result.texts(M_ERROR)[0]


@pytest.mark.parametrize("mode,why", [("buf_too_long", "len(buf)"),
                                      ("status_gt_buf", "past the end")])
def test_bad_io_read_packets_are_read_errors(fd, tmp_path, mode, why):
    result, _ = misbehave(fd, tmp_path, mode)
    assert result.status == "W" and result.errors == 4     # 'empty' has no data
    assert any(why in text for text in result.texts(M_INFO))


def test_error_with_status_zero_is_a_silent_eof(fd, tmp_path):
    result, _ = misbehave(fd, tmp_path, "error_eof")
    assert result.status == "T" and result.file("/@trace/bkt/c.txt").size == 0


def test_return_codes_of_start_backup_file(fd, tmp_path):
    result, names = misbehave(fd, tmp_path, "none_start")
    assert result.status == "W" and "unhandled returncode" in result.texts(M_ERROR)[0]
    assert names[-3:] == ["start_backup_file", "handle_plugin_event", "handle_plugin_event"]
    result, _ = misbehave(fd, tmp_path, "error_start")
    assert result.status == "f" and "startBackupFile failed" in result.texts(M_FATAL)[0]
    result, names = misbehave(fd, tmp_path, "skip_first")
    assert result.status == "T" and names[5:7] == ["start_backup_file"] * 2
    assert len(result.files) == 5


@pytest.mark.parametrize("mode,text", [("fname_bytes", "fname needs to be of type string"),
                                       ("statp_none", "PyStatPacketToNative")])
def test_bad_save_packets_are_fatal(fd, tmp_path, mode, text):
    result, _ = misbehave(fd, tmp_path, mode)
    assert result.status == "f" and text in result.texts(M_FATAL)[0]


def test_raise_in_event_4_fails_a_complete_backup(fd, tmp_path):
    result, _ = misbehave(fd, tmp_path, "raise_event4")
    assert result.status == "f" and len([f for f in result.files if f.cataloged]) == 5
    assert fd.current_state() == {}


def test_bareosfd_from_another_thread_raises(fd, tmp_path):
    result, _ = misbehave(fd, tmp_path, "thread_call")
    assert result.status == "T"
    assert any("thread said:" in t and "plugin_ctx is unset" in t
               for t in result.texts(M_INFO))
    assert result.texts(M_INFO)[0].startswith("python3-fd-mod: ")


def test_fresh_module_copy_per_job(fd, tmp_path):
    fd.backup(plugin(tmp_path))
    assert "bareosfd" not in sys.modules and "memfiles_core" not in sys.modules
    assert "bareos-fd-memfiles" not in sys.modules


def test_fork_is_refused(fd, tmp_path):
    result, _ = misbehave(fd, tmp_path, "fork")
    assert result.status == "f" and "real-fd-trace 8b" in result.texts(M_FATAL)[0]


def test_strptime_fails_from_the_second_job_on(fd, tmp_path):
    """real-fd-trace 8d: datetime.strptime works in a daemon's first job only."""
    first, _ = misbehave(fd, tmp_path, "strptime")
    assert first.status == "T"
    second, _ = misbehave(fd, tmp_path, "strptime")
    assert second.status == "f"
    assert "TypeError: 'NoneType' object is not callable" in second.texts(M_FATAL)[0]
    import datetime
    assert datetime.datetime.strptime("2026-11-23", "%Y-%m-%d").day == 23  # the test's own thread


def test_getvalue_checkchanges_fails_loudly(fd, tmp_path):
    with pytest.raises(EmulatorError, match="bVarCheckChanges"):
        misbehave(fd, tmp_path, "getvalue_checkchanges")


# ------------------------------------------------------------ leftovers
def test_leftover_daemon_thread(tmp_path):
    fd = FileDaemon(str(tmp_path / "w"), leftover_grace=0.1)
    with pytest.raises(EmulatorJobError, match="daemon thread 'leaky'"):
        misbehave(fd, tmp_path, "daemon_thread")
    lax = FileDaemon(str(tmp_path / "w2"), strict=False, leftover_grace=0.1)
    result, _ = misbehave(lax, tmp_path, "daemon_thread")
    assert result.status == "T" and "Py_EndInterpreter" in result.emulator_errors[0]
    for thread in threading.enumerate():
        if thread.name == "leaky":
            thread.join()


def test_leftover_child_process(tmp_path):
    fd = FileDaemon(str(tmp_path / "w"), strict=False, leftover_grace=0.1)
    result, _ = misbehave(fd, tmp_path, "child")
    assert len(result.emulator_errors) == 1 and "never reaps" in result.emulator_errors[0]
    pid = int(re.search(r"child process (\d+)", result.emulator_errors[0]).group(1))
    os.kill(pid, 9)
    os.waitpid(pid, 0)


def test_leftover_temp_file(tmp_path):
    fd = FileDaemon(str(tmp_path / "w"), strict=False, leftover_grace=0.1)
    result, _ = misbehave(fd, tmp_path, "tempfile")
    assert any("bareos-leak-" in e for e in result.emulator_errors)
    assert not glob.glob(os.path.join(tempfile.gettempdir(), "fdemu-job-*", "bareos-leak-*"))


# ----------------------------------------------------- restore errors (7)
def restore_with(fd, tmp_path, mode):
    fd.backup(plugin(tmp_path, module="bareos-fd-misbehave", mode=mode))
    return fd.restore(where=str(tmp_path / "r"), files=["/@trace/bkt/a.txt"])


def test_raise_in_create_file(fd, tmp_path):
    result = restore_with(fd, tmp_path, "raise_create")
    assert result.status == "f" and result.summary["files_restored"] == 0
    assert result.call_names()[-3:] == ["create_file", "end_restore_file",
                                        "handle_plugin_event"]
    assert result.calls[-1][1] == "event 6"


def test_raise_in_io_write(fd, tmp_path):
    result = restore_with(fd, tmp_path, "raise_write")
    assert result.status == "f"
    assert result.call_names()[-5:] == ["plugin_io", "plugin_io", "plugin_io",
                                        "end_restore_file", "handle_plugin_event"]
    assert "Write error on %s/@trace/bkt/a.txt: Success\n" % (tmp_path / "r") in \
        result.texts(M_ERROR)


def test_short_write_and_none_from_end_restore_file(fd, tmp_path):
    result = restore_with(fd, tmp_path, "short_write")
    assert result.status == "W" and result.texts(M_ERROR)[0].startswith("Write error on")
    assert "set_file_attributes" not in result.call_names()
    result = restore_with(fd, tmp_path, "none_end_restore")
    assert result.status == "f" and "endRestoreFile invalid" in result.texts(M_FATAL)[0]


def test_cf_error_is_an_error(fd, tmp_path):
    result = restore_with(fd, tmp_path, "cf_error")
    assert result.status == "W"
    assert "Returned CF_ERROR" in result.texts(M_ERROR)[0]


def test_cf_core_opens_through_plugin_io_and_core_sets_attributes(fd, tmp_path):
    result = restore_with(fd, tmp_path, "cf_core")
    assert result.status == "T"
    opened = [e for e in read_log(tmp_path) if e["call"] == "open_for_restore"]
    assert opened[-1]["flags"] == 577 and opened[-1]["mode"] == 0
    path = tmp_path / "r" / "@trace/bkt/a.txt"
    assert path.read_bytes() == b"hello world"
    assert path.stat().st_mode & 0o777 == 0o644 and path.stat().st_mtime == 1700000000


def test_a_fileset_without_signature_computes_no_digest(tmp_path):
    volume = VolumeWriter(str(tmp_path), 1, signature=None)
    record = FileRecord(fname="/x", type=3, statp={})
    volume.start(record)
    volume.write(record, b"abc")
    volume.finish(record)
    volume.close()
    assert record.md5 == "" and record.md5_base64 == "" and record.read_bytes() == b"abc"


# ------------------------------------------------------------------ sparse
BLOCK = 262144 - 8  # the IO_READ count with sparse=yes: 8 bytes of each record hold its offset


def sparse_flags():
    flags = bytearray.fromhex("02c0000800")
    flags[0] |= 1 << 5  # FO_SPARSE
    return bytes(flags)


def sparse_backup(fd, tmp_path, blocks):
    """Back up one file made of ``blocks`` (bytes), sparse=yes; returns (data, FileRecord)."""
    data = b"".join(blocks)
    assert data.decode("ascii")  # memfiles encodes its data as UTF-8
    files = write_files(tmp_path, [{"fname": "/@trace/bkt/disk", "data": data.decode("ascii"),
                                    "mtime": 1700000000, "ctime": 1700000000}])
    result = fd.backup(plugin(tmp_path, files=files), fileset_options=sparse_flags())
    assert result.status == "T", result.messages
    return data, result.file("/@trace/bkt/disk")


def record_offsets(record):
    return [int.from_bytes(r[:8], "big") for r in record.iter_records()]


def test_sparse_serial_path_always_sends_the_last_block(fd, tmp_path, monkeypatch):
    """backup.cc SendPlainDataSerially/SendDataToSd (MaximumWorkersPerJob = 0): a full zero
    block is skipped only when it ends before the file's end (fileAddr + length < st_size), so
    a file whose size is an exact multiple of the read size and ends in a zero block comes back
    whole. The old rule (length + read size < st_size, whatever the offset) dropped that block."""
    import fdemu.backup
    monkeypatch.setattr(fdemu.backup, "MAX_WORKERS_PER_JOB", 0, raising=False)
    x, zero = b"x" * BLOCK, bytes(BLOCK)
    data, record = sparse_backup(fd, tmp_path, [x, zero, x, zero])
    assert record_offsets(record) == [0, 2 * BLOCK, 3 * BLOCK]  # the inner zero block skipped
    assert record.read_bytes() == data  # what a restore writes: the whole file


def test_sparse_small_file_skips_a_leading_zero_block(fd, tmp_path):
    """A file shorter than two reads always takes the serial path: its full zero first block ends
    before the file's end and is skipped (the old rule needed st_size > 2 reads)."""
    data, record = sparse_backup(fd, tmp_path, [bytes(BLOCK), b"tail" * 25])
    assert record_offsets(record) == [BLOCK]
    assert record.read_bytes() == data


def test_sparse_parallel_path_drops_a_zero_block_at_the_very_end(fd, tmp_path):
    """SendPlainData's pipeline (the default: MaximumWorkersPerJob 2, files of two reads or
    more) skips a full zero block when length + read size < st_size: for a file longer than two
    reads that includes a zero block at the very end, so Bareos's copy is one block short."""
    x, zero = b"x" * BLOCK, bytes(BLOCK)
    data, record = sparse_backup(fd, tmp_path, [x, zero, x, zero])
    assert record_offsets(record) == [0, 2 * BLOCK]
    assert record.read_bytes() == data[:-BLOCK]
    data, record = sparse_backup(fd, tmp_path, [x, zero])  # exactly two reads: nothing skipped
    assert record_offsets(record) == [0, BLOCK] and record.read_bytes() == data


# ------------------------------------------------------------ plugin options
# bEventNewPluginOptions: filed/dir_cmd.cc PluginoptionsCmd, fd_plugins.cc GeneratePluginEvent,
# python-fd.cc handlePluginEvent/parse_plugin_definition (docs/emulator.md "Plugin options").
def parses(result):
    """What parse_plugin_definition received, in order (the emulator's call record)."""
    return [info for name, info in result.calls if name == "parse_plugin_definition"]


def backed_up(fd, tmp_path, **options):
    fd.backup(plugin(tmp_path, **options))
    read_log(tmp_path)
    return "log=%s:" % (tmp_path / "log.jsonl")


@pytest.mark.parametrize("options", ["python3:restore_to=bucket",
                                     "python3:restore_to=bucket:",   # its ':' is not doubled
                                     "python:restore_to=bucket"])    # name minus its last char
def test_restore_plugin_options_are_prepended_at_the_first_file_only(fd, tmp_path, options):
    """The event arrives before the first file while Python is not loaded: nothing is imported,
    nothing is reported, the plugin sees nothing; python-fd saves the raw string and parses
    saved + the first file's backup-time string, so load_bareos_plugin and the first
    parse_plugin_definition get restore_to=bucket first. Later files: Python is loaded, plain."""
    backup_opts = backed_up(fd, tmp_path)
    result = fd.restore(where=str(tmp_path / "r"), plugin_options=options)
    assert result.status == "T" and not result.messages
    first = "restore_to=bucket:" + backup_opts
    assert parses(result) == [first] + [backup_opts] * 4
    names = result.call_names(core=True)
    assert names.index("core:NewPluginOptions") < names.index("core:RestoreCommand")
    assert ("core:import", "no module_name: nothing imported (bRC_Error, no message)") \
        in result.calls
    # the module_name of the backup-time string is the one imported, with the combined options
    assert ("core:import", "bareos-fd-memfiles") in result.calls
    assert ("load_bareos_plugin", first) in result.calls
    log = read_log(tmp_path)
    assert log[0] == dict(log[0], call="__init__", plugindef=first)
    assert [e["plugindef"] for e in log if e["call"] == "parse_plugin_definition"] \
        == [first] + [backup_opts] * 4
    assert not any(e.get("event") == 20 for e in log)   # never a handle_plugin_event


def test_restore_plugin_options_for_another_plugin_are_not_delivered(fd, tmp_path):
    """GeneratePluginEvent sends a named string only to the plugin of that name (find_plugin):
    for bpipe, python3-fd gets nothing and nothing is prepended."""
    backup_opts = backed_up(fd, tmp_path)
    result = fd.restore(where=str(tmp_path / "r"), plugin_options="bpipe:restore_to=bucket")
    assert result.status == "T" and not result.messages
    assert parses(result) == [backup_opts] * 5
    assert ("core:NewPluginOptions", "not delivered: no plugin named 'bpipe'") in result.calls
    assert not any(name == "core:plugin_options" for name, _ in result.calls)


def test_restore_plugin_options_last_one_replaces_the_saved_string(fd, tmp_path):
    """bconsole's pluginoptions= and then each FD Plugin Options line: every event frees the
    saved string before saving its own, so only the last one is prepended."""
    backup_opts = backed_up(fd, tmp_path)
    result = fd.restore(where=str(tmp_path / "r"),
                        plugin_options=["python3:restore_to=a", "python3:restore_prefix=x/"])
    assert parses(result)[:2] == ["restore_prefix=x/:" + backup_opts, backup_opts]


def test_restore_plugin_options_module_path_keeps_the_first_value(fd, tmp_path):
    """The options' module_path goes into sys.path at the event (PyLoadModule inserts a
    module_path once: python_path_is_set) and stays python-fd's module_path at the first file
    (while options are saved, the first value seen is kept: SetStringIfNull), so the backup-time
    module_path is never inserted and the module is not found."""
    backed_up(fd, tmp_path)
    result = fd.restore(where=str(tmp_path / "r"),
                        plugin_options="python3:module_path=/nonexistent-fdemu:restore_to=b")
    assert result.status == "f" and not parses(result)
    assert any("ModuleNotFoundError" in text for text in result.texts(M_FATAL))
    assert not any(name == "load_bareos_plugin" for name, _ in result.calls)


def test_restore_plugin_options_with_module_name_load_at_the_event(fd, tmp_path):
    """With a module_name the options load the module at once (PyLoadModule at the event), with
    Type I and JobStatus C (before the restore command); the restore then gets
    bEventStartRestoreJob and every file's parse gets only its backup-time options."""
    backup_opts = backed_up(fd, tmp_path)
    log = "log=%s" % (tmp_path / "log.jsonl")
    options = "python3:module_path=%s:module_name=bareos-fd-misbehave:%s:restore_to=b" % (
        PLUGINS, log)
    result = fd.restore(where=str(tmp_path / "r"), plugin_options=options)
    assert result.status == "T"
    assert ("core:import", "bareos-fd-misbehave") in result.calls
    assert parses(result) == [log + ":restore_to=b:"] + [backup_opts] * 5
    names = result.call_names()
    assert names[:3] == ["load_bareos_plugin", "parse_plugin_definition", "handle_plugin_event"]
    entries = read_log(tmp_path)
    assert (entries[0]["call"], entries[0]["type"], entries[0]["status"]) == ("__init__", "I", "C")
    assert entries[2]["event"] == 5 and entries[2]["type"] == "R"


def test_backup_plugin_options_reach_the_loaded_module(fd, tmp_path):
    """A backup's options come after the FileSet (dird/backup.cc: SendPluginOptions after
    SendIncludeExcludeLists): the module is loaded, so Python's parse_plugin_definition gets
    them at once; the BackupCommand's parse then gets the FileSet string's options alone."""
    backup_opts = "log=%s:" % (tmp_path / "log.jsonl")
    result = fd.backup(plugin(tmp_path), plugin_options=["python3:a=1", "bpipe:b=2",
                                                         "python3:c=3"])
    assert result.status == "T"
    assert parses(result) == [backup_opts, "a=1:", "c=3:", backup_opts]
    events = [info for name, info in result.calls
              if name in ("parse_plugin_definition", "handle_plugin_event")]
    assert events == [backup_opts, "event 16", "a=1:", "c=3:", "event 3", backup_opts,
                      "event 4", "event 2"]
    assert not any(name == "core:plugin_options" for name, _ in result.calls)


def test_estimate_gets_no_plugin_options(fd, tmp_path):
    """The director's estimate command sends no plugin options (dird/ua_cmds.cc EstimateCmd)."""
    result = fd.estimate(plugin(tmp_path), plugin_options="python3:a=1")
    assert "a=1:" not in parses(result) and len(parses(result)) == 2
    assert any(name == "core:NewPluginOptions" and info.startswith("not sent")
               for name, info in result.calls)
