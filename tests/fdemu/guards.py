"""Things the real bareos-fd does not survive (real-fd-trace 8b, 8c, 8d).

- ``no_fork()``: os.fork raises while a job runs (fork in the fd kills the
  child; subprocess and multiprocessing 'spawn' do not use os.fork).
- ``broken_strptime()``: from a daemon's second job on, datetime.strptime and
  time.strptime raise TypeError in the job's interpreter (8d).
- ``Snapshot``: threads and child processes before a job, compared after
  it to find leftovers; plus a private temp dir for the job (tempfile.tempdir
  and $TMPDIR point there), so leftover temp files are attributed exactly.
"""

import contextlib
import gc
import os
import shutil
import tempfile
import threading
import time

FORK_MESSAGE = "fork inside bareos-fd kills the child (real-fd-trace 8b)"


def _no_fork(*args, **kwargs):
    raise RuntimeError(FORK_MESSAGE)


@contextlib.contextmanager
def no_fork():
    """Replace os.fork/os.forkpty for the duration of a job."""
    saved = os.fork, getattr(os, "forkpty", None)
    os.fork = _no_fork
    if saved[1] is not None:
        os.forkpty = _no_fork
    try:
        yield
    finally:
        os.fork = saved[0]
        if saved[1] is not None:
            os.forkpty = saved[1]


STRPTIME_MESSAGE = ("'NoneType' object is not callable (fdemu: strptime fails from the second job "
                    "of a bareos-fd on, real-fd-trace 8d)")


def _in_job_interpreter():
    """Whether the calling thread belongs to the job's interpreter (not the emulator's or the
    test's own threads)."""
    name = threading.current_thread().name
    if name.startswith(("fdemu-job", "fdemu-cancel")):
        return True
    return threading.current_thread() is not threading.main_thread() and not name.startswith(OUTSIDE_DAEMON_THREADS)


@contextlib.contextmanager
def broken_strptime(active=True):
    """Make datetime.strptime and time.strptime fail in the job's threads, as in a real daemon's
    later jobs (a CPython sub-interpreter issue with the lazily imported ``_strptime``).  Both
    C functions call into the ``_strptime`` module by attribute, so that is where it breaks."""
    if not active:
        yield
        return
    import _strptime

    saved = _strptime._strptime_datetime, _strptime._strptime_time

    def breaks(original):
        def call(*args, **kwargs):
            if _in_job_interpreter():
                raise TypeError(STRPTIME_MESSAGE)
            return original(*args, **kwargs)
        return call

    _strptime._strptime_datetime, _strptime._strptime_time = breaks(saved[0]), breaks(saved[1])
    try:
        yield
    finally:
        _strptime._strptime_datetime, _strptime._strptime_time = saved


def child_processes():
    """pid -> state letter of our direct children (from /proc)."""
    me = os.getpid()
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, encoding="ascii", errors="replace") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rfind(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == me:
            children[int(entry)] = fields[0]
    return children


@contextlib.contextmanager
def private_tempdir():
    """Point tempfile and $TMPDIR at a fresh directory for one job."""
    path = tempfile.mkdtemp(prefix="fdemu-job-")
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir, os.environ["TMPDIR"] = path, path
    try:
        yield path
    finally:
        tempfile.tempdir = saved[0]
        if saved[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved[1]


#: Threads that are not the plugin's: the emulator's own, and the test infrastructure that
#: shares the test process but would run outside bareos-fd (tests/faultproxy.py).
OUTSIDE_DAEMON_THREADS = ("fdemu-", "faultproxy")


class Snapshot:
    """State before a job; ``leftovers()`` lists what the job left behind."""

    def __init__(self, tmpdir):
        self.threads = set(threading.enumerate())
        self.children = set(child_processes())
        self.tmpdir = tmpdir

    def leftovers(self, grace=1.0):
        """Emulator error texts for leaked threads, children, temp files."""
        gc.collect()                      # lets idle executor workers exit
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (self._threads() or self._children()):
            time.sleep(0.05)
        errors = [self._thread_error(t) for t in self._threads()]
        errors += [self._child_error(pid, state)
                   for pid, state in sorted(self._children().items())]
        errors += self._tmp_errors()
        return errors

    def _threads(self):
        return [t for t in threading.enumerate()
                if t not in self.threads and t.is_alive()
                and not t.name.startswith(OUTSIDE_DAEMON_THREADS)]

    def _children(self):
        return {pid: state for pid, state in child_processes().items()
                if pid not in self.children}

    @staticmethod
    def _thread_error(thread):
        if thread.daemon:
            return ("daemon thread %r still running at job end: the real fd dies with "
                    "'Py_EndInterpreter: not the last thread' (real-fd-trace 8c)"
                    % thread.name)
        return ("non-daemon thread %r still running at job end: the real fd blocks "
                "the job teardown until it exits (real-fd-trace 8c)" % thread.name)

    @staticmethod
    def _child_error(pid, state):
        what = "zombie" if state == "Z" else "running (state %s)" % state
        return ("child process %d started during the job is still %s: bareos-fd never "
                "reaps children it did not start (real-fd-trace 8b)" % (pid, what))

    def _tmp_errors(self):
        """Anything left in the job's private temp dir; then remove it."""
        try:
            names = sorted(os.listdir(self.tmpdir))
        except OSError:
            names = []
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        return ["temp entry %s left in the temp dir by the job (the real fd's temp "
                "dir is shared by all jobs and never cleaned)" % name for name in names]
