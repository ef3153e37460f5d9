"""Loading the plugin module at a plugin command (API doc section 1), and plugin options.

``plugin_command`` is python-fd's handlePluginEvent for the Backup-,
Restore-, Estimate- and PluginCommand events: C-side parse, import and
``load_bareos_plugin`` if not loaded yet, then ``parse_plugin_definition``.

``new_plugin_options`` is the FD's ``pluginoptions`` command (dir_cmd.cc
PluginoptionsCmd): GeneratePluginEvent(bEventNewPluginOptions) and python-fd's
handling of it, which saves the raw string; ``c_parse`` prepends that saved
string at the next plugin command while Python is not loaded yet.
"""

import importlib
import sys

from .job import M_ERROR, M_FATAL, bRC_Error, bRC_OK
from .plugin_string import (PluginDefinitionError, event_for_this_plugin, get_plugin_name,
                            parse_definition)

NEW_PLUGIN_OPTIONS = 20                 # bEventNewPluginOptions


def plugin_command(rt, plugin_string, event_name):
    """Returns the bRC the core sees for this plugin command."""
    rt.trace("core:" + event_name, plugin_string)
    definition = c_parse(rt, plugin_string)
    if definition is None:
        return bRC_Error
    rc = bRC_OK
    if not rt.loaded:
        rc = load_module(rt, definition)
    if rc == bRC_OK:
        rc = rt.call("parse_plugin_definition", definition.options,
                     info=definition.options)
    return rc


def c_parse(rt, value):
    """python-fd.cc parse_plugin_definition, the C side. Returns the Definition, or None after
    an M_FATAL (bRC_Error).

    With plugin options saved (bEventNewPluginOptions) and Python not loaded yet, the string
    parsed is the saved one plus ``value`` from its first ':' on (without that ':' if the saved
    one ends with ':'). While options are saved (``keep_existing``), module_path/module_name
    keep the first value seen (SetStringIfNull); otherwise every pair sets them (SetString)."""
    keep_existing = rt.plugin_options is not None
    text = value
    if not rt.loaded and rt.plugin_options is not None:
        colon = value.find(":")
        if colon < 0:
            rt.message(M_FATAL, "python3-fd: Illegal plugin definition %s\n" % value)
            return None
        saved = rt.plugin_options
        text = saved + (value[colon + 1:] if saved.endswith(":") else value[colon:])
        rt.trace("core:plugin_options", "saved options prepended: %s" % text)
    try:
        definition = parse_definition(text)
    except PluginDefinitionError as exc:
        rt.message(M_FATAL, "python3-fd: %s\n" % exc)
        return None
    for key, module_value in definition.module_values:
        if not (keep_existing and getattr(rt, key) is not None):
            setattr(rt, key, module_value)
    return definition


def new_plugin_options(rt, value):
    """The ``pluginoptions <value>`` command. Returns the bRC of python-fd, or None if the
    event reached no plugin.

    fd_plugins.cc GeneratePluginEvent: the event goes only to the plugin named before the
    first ':' (IsEventForThisPlugin: "python3" or "python"), to none if no loaded plugin has
    that name, and to every plugin only when the string has no name (GetPluginName fails).
    Not once the job is canceled or fatal, nor if the plugin unregistered event 20.
    python-fd handlePluginEvent: free the saved options, C-side parse, save the raw string;
    if Python is not loaded, PyLoadModule (which imports nothing without module_name and
    returns bRC_Error without a message); then, if that is OK, parse_plugin_definition. Python's
    handle_plugin_event never sees event 20."""
    rt.trace("core:NewPluginOptions", value)
    length, malformed = get_plugin_name(value)
    if malformed:
        rt.message(M_ERROR, "Malformed plugin command: %s\n" % value)
    if not event_for_this_plugin(value, length):
        rt.trace("core:NewPluginOptions", "not delivered: no plugin named %r" % value[:length])
        return None
    if rt.stopped:
        rt.trace("core:NewPluginOptions", "not delivered: the job is canceled")
        return None
    if NEW_PLUGIN_OPTIONS not in rt.events:
        rt.trace("core:NewPluginOptions", "not delivered: event 20 is not registered")
        return None
    rt.plugin_options = None
    definition = c_parse(rt, value)
    rt.plugin_options = value
    if definition is None:
        return bRC_Error
    rc = bRC_OK
    if not rt.loaded:
        rc = load_module(rt, definition, quiet=True)
    if rc == bRC_OK:
        rc = rt.call("parse_plugin_definition", definition.options,
                     info=definition.options)
    return rc


def send_plugin_options(rt, plugin_options):
    """dird fd_cmds.cc SendPluginOptions: one ``pluginoptions`` command per string, in order
    (bconsole's ``pluginoptions=`` first, then each "FD Plugin Options" line of the Job)."""
    for value in plugin_options_list(plugin_options):
        new_plugin_options(rt, value)


def plugin_options_list(plugin_options):
    if plugin_options is None:
        return []
    values = [plugin_options] if isinstance(plugin_options, str) else list(plugin_options)
    for value in values:
        if not isinstance(value, str) or not value:
            raise ValueError("plugin options must be non-empty strings: %r" % (value,))
    return values


def load_module(rt, definition, quiet=False):
    """PyLoadModule: sys.path, import <module_name>, load_bareos_plugin.

    It uses python-fd's saved module_path/module_name (``rt``), which ``c_parse`` set.
    ``quiet``: at bEventNewPluginOptions a missing module_name is silent (bRC_Error)."""
    if rt.daemon.plugin_dir and not rt.default_path_set:
        sys.path.insert(0, rt.daemon.plugin_dir)
        rt.default_path_set = True
    if rt.module_path and not rt.path_set:
        sys.path.insert(0, rt.module_path)
        rt.path_set = True
    if not rt.module_name:
        if quiet:
            rt.trace("core:import", "no module_name: nothing imported (bRC_Error, no message)")
        else:
            rt.message(M_FATAL, "python3-fd: no module_name in plugin definition "
                       "(fdemu: the real daemon would not load anything)\n")
        return bRC_Error
    rt.trace("core:import", rt.module_name)
    rt.fake._enter_callback()          # module-level code may call bareosfd
    try:
        rt.module = importlib.import_module(rt.module_name)
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
