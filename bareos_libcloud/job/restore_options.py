"""The options of each restored file: its backup line's, under the restore's own ``pluginoptions``.

bareos-fd hands the plugin, per restored file, ``parse_plugin_definition(text)`` and then
``start_restore_file(cmd)``: ``cmd`` is the backup's whole plugin string, ``text`` the same options
with, for the first file only, the restore's plugin options in front (python-fd.cc; see
docs/bareos-api-notes.md).  The restore's options are taken from that first text and kept for
every file.
"""

from ..options import OptionError, is_secret_option, line_pairs, plugin_text, restore_overrides, split_plugin_string
from .lines import build_restore_options

#: What a restore's pluginoptions may give when it restores to disk (the rest names a store).
LOCAL_OVERRIDES = ("restore_to", "debug")


class RestoreOptions:
    """The restore's option texts, the pluginoptions found in them, the Options of each file."""

    def __init__(self):
        self.checked = {}  # each file's text -> Options (checked when it first comes)
        self.by_file = {}  # pluginoptions + line -> the Options restored files use
        self.text = None  # the text of the file being restored
        self.line = None  # its backup-time options (from start_restore_file's cmd), as a text
        self.overrides = None  # the restore's pluginoptions, once known ("" if none)

    def parse(self, text):
        """parse_plugin_definition of a restored file (raises OptionError)."""
        self.text = text
        if text not in self.checked:
            # quiet: the first file's text repeats what the restore's pluginoptions override
            self.checked[text] = build_restore_options("", text, need_remote=False)

    def start_file(self, cmd):
        """start_restore_file: the file's line; at the first file, the restore's own options.
        Returns the restore's options, for the debug log, once they are found (else None)."""
        try:
            self.line = plugin_text(line_pairs(cmd))
        except OptionError:
            self.line = self.text
        if self.overrides is not None or self.text is None:
            return None
        try:
            self.overrides = restore_overrides(self.text, cmd)
        except OptionError:
            self.overrides = ""
        return shown(self.overrides) if self.overrides else None

    def current(self):
        """The Options of the file being restored (raises OptionError)."""
        overrides, line = self.overrides or "", self.line or self.text or ""
        key = overrides + line
        opts = self.by_file.get(key)
        if opts is None:
            opts = build_restore_options(overrides, line, need_remote=False)
            if opts.restore_to == "bucket":
                opts = build_restore_options(overrides, line, need_remote=True)
            else:
                given = [k for k, _ in split_plugin_string(overrides) if k not in LOCAL_OVERRIDES]
                if given:
                    raise OptionError("option %s given at restore does nothing in a restore to disk "
                                      "(restore_to=bucket restores into a bucket)" % given[0])
                unused = [name for name in ("restore_bucket", "restore_prefix") if getattr(opts, name)]
                if unused:  # from the FileSet's line: its restores into buckets use it
                    opts.warnings.append("%s in the plugin options does nothing in this restore to disk "
                                         "(it is for restore_to=bucket)" % " and ".join(unused))
            self.by_file[key] = opts
            self.checked[key] = opts  # its secrets and debug setting go to the job log's setup
        return opts

    def keeps_storage_class(self):
        """Objects keep their storage class unless the restore names another provider."""
        return "provider" not in dict(split_plugin_string(self.overrides or ""))

    def all(self):
        return list(self.checked.values())


def shown(text):
    """An option text for a message: secrets as ***."""
    return ":".join("%s=%s" % (k, "***" if is_secret_option(k) else v) for k, v in split_plugin_string(text))
