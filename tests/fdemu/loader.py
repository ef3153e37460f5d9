"""Loading the plugin module at a plugin command (API doc section 1).

``plugin_command`` is python-fd's handlePluginEvent for the Backup-,
Restore-, Estimate- and PluginCommand events: C-side parse, import and
``load_bareos_plugin`` if not loaded yet, then ``parse_plugin_definition``.
"""

import importlib
import sys

from .job import M_FATAL, bRC_Error, bRC_OK
from .plugin_string import PluginDefinitionError, parse_definition


def plugin_command(rt, plugin_string, event_name):
    """Returns the bRC the core sees for this plugin command."""
    rt.trace("core:" + event_name, plugin_string)
    try:
        definition = parse_definition(plugin_string)
    except PluginDefinitionError as exc:
        rt.message(M_FATAL, "python3-fd: %s\n" % exc)
        return bRC_Error
    rc = bRC_OK
    if not rt.loaded:
        rc = load_module(rt, definition)
    if rc == bRC_OK:
        rc = rt.call("parse_plugin_definition", definition.options,
                     info=definition.options)
    return rc


def load_module(rt, definition):
    """PyLoadModule: sys.path, import <module_name>, load_bareos_plugin."""
    if not definition.module_name:
        rt.message(M_FATAL, "python3-fd: no module_name in plugin definition "
                   "(fdemu: the real daemon would not load anything)\n")
        return bRC_Error
    if rt.daemon.plugin_dir and not rt.default_path_set:
        sys.path.insert(0, rt.daemon.plugin_dir)
        rt.default_path_set = True
    if definition.module_path:
        sys.path.insert(0, definition.module_path)
    rt.trace("core:import", definition.module_name)
    rt.fake._enter_callback()          # module-level code may call bareosfd
    try:
        rt.module = importlib.import_module(definition.module_name)
    except BaseException as exc:      # noqa: B902 - like PyErr_Occurred
        rt.python_error(exc)
        return bRC_Error
    if not callable(getattr(rt.module, "load_bareos_plugin", None)):
        rt.trace("load_bareos_plugin", "missing: module not loaded")
        return bRC_Error
    rc = rt.call("load_bareos_plugin", definition.options, info=definition.options)
    if rt.raised:
        return bRC_Error
    rt.loaded = True
    return rc
