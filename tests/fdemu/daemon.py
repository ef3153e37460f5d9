"""FileDaemon: runs backup, estimate and restore jobs against a plugin.

Each job gets a fresh copy of the fake ``bareosfd`` module, a purge of the
plugin's modules (a new sub-interpreter in the real daemon), its own job
thread, a fork guard and leftover checks (real-fd-trace 8b/8c).
"""

import importlib.util
import os
import sys
import threading
import time

from .backup import DEFAULT_FLAGS, VERIFY_LEVELS, plugin_lines, run_backup, run_estimate, run_verify
from .catalog import Catalog, VolumeWriter
from .guards import Snapshot, broken_strptime, no_fork, private_tempdir
from .job import M_INFO, EmulatorError, JobResult, JobRuntime
from .loader import plugin_options_list
from .plugin_string import PluginDefinitionError, parse_definition
from .restore import RestoreRun

FAKE_MODULE_PATH = os.path.join(os.path.dirname(__file__), "bareosfd.py")


class EmulatorJobError(EmulatorError):
    """Raised after a job (strict mode) that the real fd would not survive."""

    def __init__(self, result):
        self.result = result
        super().__init__("job %d: %s" % (result.jobid, "; ".join(result.emulator_errors)))


class FileDaemon:
    """An emulated bareos-fd with a persistent catalog under ``workdir``."""

    def __init__(self, workdir, plugin_dir=None, *, strict=True,
                 purge_packages=("bareos_libcloud",), config_dir=None,
                 fd_name="fdemu-fd", leftover_grace=1.0):
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.plugin_dir = plugin_dir
        self.strict = strict
        self.purge_packages = list(purge_packages)
        self.config_dir = config_dir or self.workdir
        self.fd_name = self.client_name = fd_name
        self.exe_path = os.path.dirname(sys.executable)
        self.version = "26.0.0~pre (fdemu)"
        self.leftover_grace = leftover_grace
        self.catalog = Catalog(self.workdir)
        self.jobs_started = 0  # in this "process": strptime breaks from the second job on

    # ----------------------------------------------------------- jobs
    def backup(self, plugin, level="F", accurate=False, job_name="backup-job",
               cancel_after_reads=None, fileset_options=None, since=None,
               accurate_options="mcs", signature="MD5", cancel_after_seconds=None,
               plugin_options=None):
        """Run a backup job (API doc 2a). Returns a JobResult.

        ``cancel_after_reads``: CancelCommand arrives during that IO_READ.
        ``cancel_after_seconds``: it arrives that long after the job starts, during whatever
        callback runs then (as a director's ``cancel`` can), on another thread.

        ``signature``: the FileSet's Signature option, "MD5" (the default here, as in Bareos's
        sample FileSets) or None (a FileSet without one: no digest is computed).

        ``plugin_options``: a string, or a list of them in the order the director sends them
        (``run ... pluginoptions=`` first, then each line of the Job's "FD Plugin Options"):
        bEventNewPluginOptions after the FileSet (the module is loaded then), before the
        backup command (loader.new_plugin_options).
        """
        plugin_options_list(plugin_options)          # a bad value raises before the job
        notes = []
        if level in ("I", "D") and self.catalog.last_full(job_name) is None:
            notes.append("No prior Full backup Job record found.\nNo prior or suitable "
                         "Full backup found in catalog. Doing FULL backup.\n")
            level = "F"
        if level not in ("F", "I", "D"):
            raise ValueError("level must be F, I or D")
        since_time = self.catalog.since_time(job_name, level) if since is None else since
        jobid = self.catalog.new_jobid()
        start = int(time.time())
        result = JobResult(jobid, "B", level, since=since_time, job_name=job_name)
        rt = self._runtime(result, "I", level, since_time, accurate, job_name, start)
        for note in notes:
            rt.message(M_INFO, note)
        if accurate and level in ("I", "D"):
            rt.accurate_visible = rt.has_accurate_list = True
            rt.previous = Catalog.merge(self.catalog.accurate_chain(job_name, level))
        volume = VolumeWriter(self.workdir, jobid, signature)
        flags = _flags(fileset_options)
        try:
            run = self._run(rt, plugin, lambda: run_backup(
                rt, plugin, flags, volume, cancel_after_reads, accurate_options,
                cancel_after_seconds, plugin_options), plugin_options)
        finally:
            volume.close()
        result.summary.update(run.summary if run else {})
        self._record_backup(rt, plugin, start, accurate)
        return self._finish(result)

    def estimate(self, plugin, level="F", accurate=False, listing=True,
                 job_name="backup-job", since=None, fileset_options=None, plugin_options=None):
        """Run `estimate listing` (API doc 2c, trace section 4).

        ``plugin_options`` (the Job's "FD Plugin Options") are accepted but not delivered: the
        director's estimate command never sends them (dird/ua_cmds.cc EstimateCmd)."""
        plugin_options_list(plugin_options)
        if level in ("I", "D") and self.catalog.last_full(job_name) is None:
            level = "F"
        since_time = self.catalog.since_time(job_name, level) if since is None else since
        result = JobResult(0, "E", level, since=since_time, job_name=job_name)
        rt = self._runtime(result, "I", level, since_time, accurate, job_name,
                           int(time.time()))
        rt.accurate_visible = accurate and level in ("I", "D")
        run = self._run(rt, plugin, lambda: run_estimate(rt, plugin, _flags(fileset_options),
                                                           plugin_options))
        summary = run.summary if run else {"files": 0, "bytes": 0}
        result.summary.update(files=summary.get("files", 0), bytes=summary.get("bytes", 0))
        result.summary["text"] = "2000 OK estimate files=%d bytes=%s" % (
            result.summary["files"], format(result.summary["bytes"], ","))
        if not listing:
            result.listing = []
        result.status = rt.final_status()
        return self._finish(result)

    def verify(self, plugin, level="O", job_name="backup-job", jobid=None):
        """Run a Verify job of a backup of ``job_name`` (its last good one, or ``jobid``) on this
        client (``backup.run_verify``).  ``level``: "O" VolumeToCatalog, "d" DiskToCatalog, "C"
        Catalog, "V" InitCatalog, "A" Data.  ``plugin``: the FileSet the client gets (the verified
        Job's, with ``Verify Job =``)."""
        if level not in VERIFY_LEVELS:
            raise ValueError("level must be one of %s" % ", ".join(VERIFY_LEVELS))
        if jobid is None:
            backups = self.catalog.good_backups(job_name)
            if not backups:
                raise ValueError("no backup of %s to verify" % job_name)
            jobid = backups[-1]["jobid"]
        records = list(self.catalog.job(jobid)["files"])
        start = int(time.time())
        result = JobResult(self.catalog.new_jobid(), "V", level, job_name=job_name)
        rt = self._runtime(result, "V", level, 0, False, job_name, start)
        run = self._run(rt, plugin, lambda: run_verify(rt, plugin, level, records))
        result.summary.update(run.summary if run else {})
        return self._finish(result)

    def restore(self, where="/tmp/bareos-restores", replace="always",
                job_name="backup-job", jobid=None, files=None, regexwhere=None,
                plugin_options=None, cancel_after_seconds=None):
        """Restore through the plugin (API doc 2b, trace section 5).

        jobid=None restores the latest state of the job chain; an int or a
        list of ints restores the files of exactly those jobs (newest wins),
        like bconsole `restore jobid=...`.

        ``cancel_after_seconds``: a director's ``cancel`` that long after the job starts:
        CancelCommand(14) on another thread; the restore stops before the next file (restore.cc
        checks IsJobCanceled per record), then EndRestoreJob(6), which a cancelled job still gets.

        ``plugin_options``: bconsole's ``restore ... pluginoptions=<string>`` (or a list: that
        value first, then each line of the restore Job's "FD Plugin Options"), delivered as
        bEventNewPluginOptions after JobStart, before the first file; python-fd saves it and
        prepends it at the first file's plugin command (loader.c_parse)."""
        plugin_options_list(plugin_options)
        records = self._select(job_name, jobid, files)
        if not records:
            raise ValueError("nothing to restore for %s" % job_name)
        result = JobResult(self.catalog.new_jobid(), "R", " ", job_name=job_name)
        start = int(time.time())
        rt = self._runtime(result, "R", " ", 0, False, job_name, start)
        rt.where = None if regexwhere else where
        result.files = list(records)
        run = RestoreRun(rt, where, regexwhere, replace, plugin_options, cancel_after_seconds)
        self._run(rt, records[0].plugin, lambda: run.run(records), plugin_options)
        result.summary.update(run.summary)
        self.catalog.add_job(dict(jobid=result.jobid, type="R", job_name=job_name,
                                  unique_name=rt.unique_name, level=" ",
                                  status=result.status, start_time=start,
                                  end_time=int(time.time()), plugin="", files=[]))
        return self._finish(result)

    # -------------------------------------------------------- catalog views
    def current_state(self, job_name="backup-job"):
        """fname -> FileRecord of the newest state ("restore the latest")."""
        return Catalog.merge(self.catalog.accurate_chain(job_name, "I"))

    def jobs(self):
        """Catalog job entries (dicts), oldest first."""
        return list(self.catalog.jobs)

    # ------------------------------------------------------------ helpers
    def _runtime(self, result, type_char, level, since, accurate, job_name, start):
        stamp = time.strftime("%Y-%m-%d_%H.%M.%S", time.localtime(start))
        previous = self.catalog.good_backups(job_name)
        prev_name = previous[-1]["unique_name"] if previous and level in ("I", "D") else ""
        return JobRuntime(self, result, None, job_type_char=type_char, level=level,
                          since=since, accurate=accurate,
                          unique_name="%s.%s_%02d" % (job_name, stamp, result.jobid),
                          prev_job_name=prev_name)

    def _run(self, rt, plugin, body, plugin_options=None):
        """Run ``body`` on a new job thread inside a fresh 'interpreter'."""
        fake = _new_bareosfd()
        rt.fake = fake
        fake._bind(rt)
        purge = self._purge_rule(plugin, plugin_options)
        saved_path, saved_fd = list(sys.path), sys.modules.get("bareosfd")
        _purge_modules(purge[0], [])
        before = set(sys.modules)
        sys.modules["bareosfd"] = fake
        outcome = {}

        def target():
            try:
                outcome["value"] = body()
            except BaseException as exc:     # an emulator bug: re-raise below
                outcome["error"] = exc
            finally:
                rt.result.job_thread_cpu = time.thread_time()

        thread = threading.Thread(target=target, name="fdemu-job-%d" % rt.result.jobid)
        self.jobs_started += 1
        with private_tempdir() as tmpdir, no_fork(), broken_strptime(self.jobs_started > 1):
            snapshot = Snapshot(tmpdir)
            thread.start()
            thread.join()
        fake._unbind()
        rt.module = None
        sys.path[:] = saved_path
        if saved_fd is None:
            sys.modules.pop("bareosfd", None)
        else:
            sys.modules["bareosfd"] = saved_fd
        _purge_modules(purge[0], purge[1], set(sys.modules) - before)
        if "error" in outcome:
            raise outcome["error"]
        rt.result.status = rt.final_status()
        rt.result.emulator_errors.extend(snapshot.leftovers(grace=self.leftover_grace))
        return outcome.get("value")

    def _purge_rule(self, plugin, plugin_options=None):
        """Module names and directories whose modules die with the job (those of the plugin
        string and of plugin options, which can name the module too)."""
        names, dirs = list(self.purge_packages), []
        for text in plugin_lines(plugin)[:1] + plugin_options_list(plugin_options):
            try:
                definition = parse_definition(text)
            except PluginDefinitionError:
                continue
            if definition.module_name:
                names.append(definition.module_name)
            if definition.module_path:
                dirs.append(os.path.abspath(definition.module_path))
        if self.plugin_dir:
            dirs.append(os.path.abspath(self.plugin_dir))
        return names, dirs

    def _record_backup(self, rt, plugin, start, accurate):
        result = rt.result
        if result.status == "A":
            for record in result.files:
                record.cataloged = False
        self.catalog.add_job(dict(
            jobid=result.jobid, type="B", job_name=result.job_name,
            unique_name=rt.unique_name, level=result.level, status=result.status,
            start_time=start, end_time=int(time.time()), plugin=plugin,
            accurate=accurate, since=result.since,
            files=[r for r in result.files if r.cataloged]))

    def _select(self, job_name, jobid, files):
        if jobid is None:
            state = self.current_state(job_name)
        else:
            ids = [jobid] if isinstance(jobid, int) else sorted(jobid)
            state = Catalog.merge(self.catalog.job(i) for i in ids)
        if files is not None:
            missing = [f for f in files if f not in state]
            if missing:
                raise KeyError("not in the selected backup: %s" % missing)
            state = {f: state[f] for f in files}
        return sorted(state.values(), key=lambda r: (r.jobid, r.file_index))

    def _finish(self, result):
        if self.strict and result.emulator_errors:
            raise EmulatorJobError(result)
        return result


def _new_bareosfd():
    """Execute bareosfd.py afresh: a new module object per job."""
    spec = importlib.util.spec_from_file_location("bareosfd", FAKE_MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _purge_modules(names, dirs, new=()):
    """Forget the plugin's modules, as a new sub-interpreter would: the
    named packages, plus modules imported during the job from module_path
    or the plugin dir (never the emulator itself)."""
    own = os.path.dirname(os.path.abspath(__file__))
    for key in list(sys.modules):
        if any(key == n or key.startswith(n + ".") for n in names):
            del sys.modules[key]
        elif key in new:
            path = os.path.abspath(getattr(sys.modules[key], "__file__", None) or "")
            if os.path.dirname(path) != own and any(path.startswith(d + os.sep) for d in dirs):
                del sys.modules[key]


def _flags(options):
    if options is None:
        return DEFAULT_FLAGS
    if isinstance(options, str):
        options = bytes.fromhex(options)
    if len(options) != 5:
        raise ValueError("FileSet option flags must be 5 bytes")
    return bytes(options)
