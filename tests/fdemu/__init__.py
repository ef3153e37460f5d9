"""fdemu: an emulator of bareos-fd for testing Python fd plugins.

See docs/emulator.md. Public API:

- ``FileDaemon(workdir, plugin_dir=None, *, strict=True, ...)`` with
  ``backup()``, ``estimate()``, ``restore()``, ``current_state()``, ``jobs()``
- ``JobResult`` (what a job did), ``FileRecord`` (one cataloged file)
- ``EmulatorError`` / ``EmulatorJobError`` (the plugin did something the real
  daemon does not survive)
"""

from .catalog import FileRecord
from .daemon import EmulatorJobError, FileDaemon
from .job import EmulatorError, JobResult

__all__ = ["FileDaemon", "JobResult", "FileRecord", "EmulatorError",
           "EmulatorJobError"]
