"""The C side of plugin strings and restore output names.

- ``parse_definition`` follows ``parse_plugin_definition()`` in python-fd.cc
  (API doc section 1).
- ``output_name`` follows ``BuildAttrOutputFnames()`` in lib/attr.cc
  (API doc section 4, trace section 5).
"""

import re
from dataclasses import dataclass, field

_MODULE_KEYS = ("module_path", "module_name")


class PluginDefinitionError(Exception):
    """The definition is illegal; the real daemon reports M_FATAL."""


@dataclass
class Definition:
    plugin: str        # first token, e.g. "python3"
    module_path: str | None
    module_name: str | None
    options: str       # what Python receives, e.g. "k1=v1:k2=v2:"
    # every module_path/module_name pair in string order, backslashes stripped: the C code
    # sets its copy per pair (SetString, or SetStringIfNull once plugin options are saved)
    module_values: list = field(default_factory=list)


def strip_backslashes(text):
    """lib StripBackSlashes: drop each backslash, keep the next character."""
    return re.sub(r"\\(.?)", r"\1", text, flags=re.S)


def parse_definition(plugin_string):
    """Split a plugin string the way python-fd.cc does.

    Only the module_path/module_name values lose their backslashes; all other
    pairs are passed on verbatim with a trailing ':'. Like the C code, the
    '=' of a pair is searched in the whole rest of the string, so a pair
    without '=' is only fatal when no '=' follows at all.
    """
    colon = plugin_string.find(":")
    if colon < 0:
        raise PluginDefinitionError("Illegal plugin definition %s" % plugin_string)
    found = {}
    module_values = []
    options = []
    pos = colon + 1
    text = plugin_string
    while pos < len(text):
        eq = text.find("=", pos)
        if eq < 0:
            raise PluginDefinitionError(
                "Illegal argument %s without value" % text[pos:])
        key = text[pos:eq]
        vend, pos = _value_end(text, eq + 1)
        value = text[eq + 1:vend]
        target = _module_key(key)
        if target:
            found[target] = strip_backslashes(value)   # SetString: last wins
            module_values.append((target, found[target]))
        else:
            options.append("%s=%s" % (key, value))
    joined = ":".join(options) + (":" if options else "")
    return Definition(plugin_string[:colon], found.get("module_path"),
                      found.get("module_name"), joined, module_values)


def _value_end(text, start):
    """Find the ':' that ends a value (one not preceded by a backslash)."""
    pos = start
    while True:
        colon = text.find(":", pos)
        if colon < 0:
            return len(text), len(text)
        if text[colon - 1] != "\\":
            return colon, colon + 1
        pos = colon + 1


def _module_key(key):
    """strncasecmp(key, name, len(key)) == 0 for module_path/module_name."""
    for name in _MODULE_KEYS:
        if name[:len(key)].lower() == key.lower() and len(key) <= len(name):
            return name
    return None


def plugin_matches(plugin_string, plugin_name="python3"):
    """IsEventForThisPlugin: the name, or the name minus its last char."""
    token = plugin_string.split(":", 1)[0]
    return token in (plugin_name, plugin_name[:-1])


def get_plugin_name(command):
    """fd_plugins.cc GetPluginName: ``(length, malformed)`` of the name before the first ':'
    (the whole string if there is none), or ``(None, malformed)`` when there is no name: an
    empty string, a ':' first, or no ':' but a space (``malformed``: the core then reports
    M_ERROR "Malformed plugin command")."""
    if not command:
        return None, False
    colon = command.find(":")
    if colon < 0:
        if " " in command:
            return None, True
        return len(command), False
    return (colon, False) if colon > 0 else (None, False)


def event_for_this_plugin(command, length, plugin_name="python3"):
    """fd_plugins.cc IsEventForThisPlugin: no name (``length`` None) is for every plugin;
    the whole command "job" or "*all*" too; else the name, or the name minus its last char."""
    if length is None or command in ("job", "*all*"):
        return True
    return command[:length] in (plugin_name, plugin_name[:-1])


def output_name(fname, where, regexwhere=None):
    """BuildAttrOutputFnames for the file name (not the link name)."""
    if regexwhere:
        return apply_regexwhere(fname, regexwhere)
    if not where:
        return fname
    sep = "" if where.endswith("/") or fname.startswith("/") else "/"
    return where + sep + fname


def apply_regexwhere(fname, regexwhere):
    """A sed-like subset of lib/breg.cc: ``!search!replace!flags`` items
    separated by ',' (flags: i = ignore case, g = all matches)."""
    result = fname
    for expr in _split_exprs(regexwhere):
        sep = expr[0]
        parts = expr[1:].split(sep)
        if len(parts) < 3:
            raise ValueError("bad regexwhere expression %r" % expr)
        search, replace, flags = parts[0], parts[1], parts[2]
        replace = re.sub(r"\$(\d)", r"\\\1", replace)
        result = re.sub(search, replace, result, count=0 if "g" in flags else 1,
                        flags=re.I if "i" in flags else 0)
    return result


def _split_exprs(regexwhere):
    exprs, current, sep, seen = [], "", None, 0
    for char in regexwhere:
        if sep is None:
            sep, seen, current = char, 0, char
            continue
        if char == "," and seen >= 3:
            exprs.append(current)
            sep, current = None, ""
            continue
        if char == sep:
            seen += 1
        current += char
    if current:
        exprs.append(current)
    return exprs
