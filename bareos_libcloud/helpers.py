"""Starting and ending the job's helper processes from inside bareos-fd.

Measured in a real daemon (real-fd-trace.md 8b): ``fork`` kills every child, so helpers are
started with ``spawn`` and an explicit Python interpreter; multiprocessing's resource tracker
would outlive the job, so it is stopped at the end; bareos-fd never reaps children it did not
start, so every helper is joined.
"""

import os
import shutil
import sys
import time

_SPAWN = None


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

    global _SPAWN
    if _SPAWN is None:
        _SPAWN = multiprocessing.get_context("spawn")
    _SPAWN.set_executable(python)
    return _SPAWN


class Helper:
    """One helper process and the job's end of its pipe."""

    def __init__(self, name, target, config, python):
        ctx = _context(python)
        self.name = name
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=target, args=(child_conn, config), name=name, daemon=False)
        self.process.start()
        child_conn.close()
        self.alive = True
        self.stop_asked = False

    def send(self, message):
        self.conn.send(message)

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


def stop_all(helpers, grace=1.0):
    """Stop helpers together: send every stop first, then wait once."""
    deadline = time.monotonic() + grace
    for helper in helpers:
        helper.ask_to_stop()
    for helper in helpers:
        helper.stop(max(0.0, deadline - time.monotonic()))


def stop_resource_tracker():
    """End multiprocessing's resource tracker, which would otherwise outlive the job."""
    try:
        from multiprocessing import resource_tracker

        tracker = resource_tracker._resource_tracker
        if getattr(tracker, "_pid", None) is not None:
            tracker._stop()
    except Exception:  # noqa: BLE001 - best effort: the worst case is one idle process
        pass
