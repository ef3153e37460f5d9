"""Starting and ending the job's helper processes from inside bareos-fd.

Measured in a real daemon (real-fd-trace 8b): ``fork`` in bareos-fd kills every child, so
helpers come from multiprocessing's ``forkserver``: a fresh interpreter (the explicit ``python``)
that imports libcloud once and forks each helper from itself, outside bareos-fd.  A spawned
helper spent about 0.2 s of CPU importing libcloud before its first request; a forked one starts
with it loaded.  The fork server and multiprocessing's resource tracker would outlive the job, so
both are stopped at its end (real-fd-trace 8b: nothing is left over); every helper is joined.
"""

import os
import pickle
import select
import shutil
import signal
import sys
import threading
import time

_CONTEXT = None
#: What the fork server imports before it forks helpers (an ImportError there is ignored).
#: Not pycurl (helper/curlfetch.py): only a fetch helper needs it, and an incremental that finds
#: nothing changed starts none (the server's imports are most of a job's start-up).
PRELOAD = ["bareos_libcloud.protocol", "bareos_libcloud.helper.worker", "bareos_libcloud.helper.fetcher",
           "libcloud.storage.drivers.s3"]
#: Seconds the resource tracker may take to end at the job's end before it is killed.
SERVER_GRACE = 5.0
#: Seconds a helper may take to be forked (the first also waits for the server's imports).
START_SECONDS = 60.0


def python_executable(configured=None):
    """The interpreter that runs helpers: the option, else this one if it is a real python."""
    if configured:
        return configured
    exe = sys.executable or ""
    if os.path.basename(exe).startswith("python") and os.access(exe, os.X_OK):
        return exe
    return shutil.which("python3") or "/usr/bin/python3"


def _context(python):
    import multiprocessing

    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(PRELOAD)
    _CONTEXT.set_executable(python)
    return _CONTEXT


class HelperStartError(Exception):
    """No helper process could be started (the text names the interpreter)."""


class Helper:
    """One helper process and the job's end of its pipe."""

    def __init__(self, name, target, config, python, cancelled):
        ctx = _context(python)
        self.name = name
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=target, args=(child_conn, config), name=name, daemon=False)
        try:
            _start(self.process, cancelled, python)
        except HelperStartError:
            self.conn.close()
            raise
        finally:
            child_conn.close()
        self.alive = True
        self.stop_asked = False
        self._poller = None

    def send(self, message):
        # Connection.send pickles through ForkingPickler: 4 us a message more than pickle itself,
        # and the job sends one or more for every object.  recv() reads either.
        self.conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))

    def ready(self, timeout=0.0):
        """Whether a message (or the end of the pipe) waits, within ``timeout`` seconds.

        Connection.poll builds a new selector on every call; this keeps one poll object, which
        matters on the job thread, where the pipe is asked about for every object.
        """
        if self.conn.closed:
            raise OSError("handle is closed")
        if self._poller is None:
            self._poller = select.poll()
            self._poller.register(self.conn.fileno(), select.POLLIN)
        return bool(self._poller.poll(timeout * 1000.0))

    def ask_to_stop(self):
        """Tell the helper to finish (it may be busy; ``stop`` enforces it)."""
        if self.alive and not self.stop_asked:
            self.stop_asked = True
            try:
                self.conn.send(("stop",))
            except (OSError, ValueError):
                pass

    def stop(self, grace=1.0):
        """Ask the helper to stop, then end it by force; always reaps it."""
        if not self.alive:
            return
        self.ask_to_stop()
        self.alive = False
        self.conn.close()
        self.process.join(grace)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(2.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2.0)
        if not self.process.is_alive():
            self.process.close()

    def kill(self):
        """End the helper at once (a stalled or abandoned transfer)."""
        if not self.alive:
            return
        self.alive = False
        self.conn.close()
        self.process.kill()
        self.process.join(5.0)


def _start(process, cancelled, python):
    """``process.start()``, which waits for the fork server to fork it; a server that hangs, or a
    cancel meanwhile, must not hold the job thread: a watchdog thread kills the server, and the
    wait ends (EOFError)."""
    done = threading.Event()
    why = []

    def watch():
        deadline = time.monotonic() + START_SECONDS
        while not done.wait(0.1):
            if cancelled.is_set():
                why.append("the job was cancelled")
            elif time.monotonic() > deadline:
                why.append("no helper process was forked within %d s" % START_SECONDS)
            else:
                continue
            _kill_fork_server()
            return

    watchdog = threading.Thread(target=watch, name="bareos-libcloud-start", daemon=False)
    watchdog.start()
    try:
        process.start()
    except (OSError, EOFError, ValueError) as exc:
        # The fork server did not start or died (not a working python), or the watchdog ended it.
        raise HelperStartError("cannot start a helper process with the interpreter %s (option python=): %s"
                               % (python, why[0] if why else type(exc).__name__)) from None
    finally:
        done.set()
        watchdog.join()


def _kill_fork_server():
    try:
        from multiprocessing import forkserver

        pid = forkserver._forkserver._forkserver_pid
        if pid is not None:
            os.kill(pid, signal.SIGKILL)  # reaped by stop_servers
    except Exception:  # noqa: BLE001 - best effort
        pass


def stop_all(helpers, grace=1.0):
    """Stop helpers together: send every stop first, then wait once."""
    deadline = time.monotonic() + grace
    for helper in helpers:
        helper.ask_to_stop()
    for helper in helpers:
        helper.stop(max(0.0, deadline - time.monotonic()))


def stop_servers():
    """End the fork server and the resource tracker, which would otherwise outlive the job.

    Call it after every helper has been stopped: the fork server ends when its last child has.
    """
    _stop_fork_server()
    _remove_temp_dir()
    _stop_resource_tracker()


def _stop_resource_tracker():
    """``ResourceTracker._stop()``, bounded as well: an interpreter that is not a working python
    never ends at its pipe's EOF."""
    try:
        from multiprocessing import resource_tracker

        tracker = resource_tracker._resource_tracker
        pid = getattr(tracker, "_pid", None)
        if pid is None:
            return
        os.close(tracker._fd)
        tracker._fd = tracker._pid = None
        _reap(pid, time.monotonic() + SERVER_GRACE)
    except Exception:  # noqa: BLE001 - best effort: the worst case is one idle process
        pass


def _stop_fork_server():
    """``ForkServer._stop()``, without its wait: the server holds no state, so it is killed rather
    than left to run its interpreter's shutdown (about 40 ms at the end of every job)."""
    try:
        from multiprocessing import forkserver, util

        server = forkserver._forkserver
        pid = getattr(server, "_forkserver_pid", None)
        if pid is None:
            return
        address = server._forkserver_address
        os.close(server._forkserver_alive_fd)
        server._forkserver_pid = server._forkserver_alive_fd = server._forkserver_address = None
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _reap(pid, time.monotonic() + SERVER_GRACE)
        if address and not util.is_abstract_socket_namespace(address):
            os.unlink(address)
    except Exception:  # noqa: BLE001 - best effort: the worst case is one idle process
        pass


def _reap(pid, deadline):
    """Wait for our child ``pid`` to end; kill it at ``deadline``."""
    pause = 0.001
    try:
        while os.waitpid(pid, os.WNOHANG)[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            time.sleep(pause)
            pause = min(pause * 2, 0.01)
    except ChildProcessError:
        pass  # already reaped


def _remove_temp_dir():
    """Remove multiprocessing's ``pymp-*`` directory (it held the fork server's socket) now.

    multiprocessing removes it when the interpreter exits; bareos-fd's temp directory is shared
    by every job and never cleaned, so it goes at the end of the job, by multiprocessing's own
    finalizer (which then forgets it).
    """
    try:
        from multiprocessing import util

        for finalizer in list(util._finalizer_registry.values()):
            if getattr(finalizer, "_callback", None) is util._remove_temp_dir:
                finalizer()
    except Exception:  # noqa: BLE001 - best effort: the worst case is one empty directory
        pass
