"""The real plugin with an unexpected exception injected (tests/test_unexpected_errors.py).

``LIBCLOUD_RAISE_IN`` names where: ``read`` (every IO_READ of an object) or ``check_file``.
Patched here, in the job's own fresh copy of the package, so no other job sees it.
"""

import os

import bareosfd

from bareos_libcloud import naming
from bareos_libcloud.job import streaming
from bareos_libcloud.job.plugin import BareosFdPluginLibcloud


def _boom(*args, **kwargs):
    raise RuntimeError("injected by the test plugin")


if os.environ.get("LIBCLOUD_RAISE_IN") == "read":
    streaming.ObjectReader.read = _boom
elif os.environ.get("LIBCLOUD_RAISE_IN") == "check_file":
    naming.parse_fname = _boom

plugin = None


def load_bareos_plugin(plugindef):
    global plugin
    plugin = BareosFdPluginLibcloud(bareosfd, plugindef)
    return bareosfd.bRC_OK


def _forward(name):
    return lambda *args: getattr(plugin, name)(*args)


for _name in ("parse_plugin_definition", "handle_plugin_event", "start_backup_file", "end_backup_file",
              "start_restore_file", "end_restore_file", "restore_object_data", "plugin_io", "create_file",
              "set_file_attributes", "check_file", "get_acl", "set_acl", "get_xattr", "set_xattr",
              "handle_backup_file"):
    globals()[_name] = _forward(_name)
