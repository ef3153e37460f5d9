"""bareos-fd entrypoint of bareos-libcloud (``module_name=bareos-fd-libcloud``).

bareos-fd imports this module in a fresh Python sub-interpreter for every job and looks up the
functions below by name.  Each one hands its call to the job's single BareosFdPluginLibcloud
object; all the work lives in the ``bareos_libcloud`` package.
"""

import bareosfd

from bareos_libcloud.job.plugin import BareosFdPluginLibcloud

plugin = None


def load_bareos_plugin(plugindef):
    global plugin
    plugin = BareosFdPluginLibcloud(bareosfd, plugindef)
    return bareosfd.bRC_OK


def parse_plugin_definition(plugindef):
    return plugin.parse_plugin_definition(plugindef)


def handle_plugin_event(event):
    return plugin.handle_plugin_event(event)


def start_backup_file(savepkt):
    return plugin.start_backup_file(savepkt)


def end_backup_file():
    return plugin.end_backup_file()


def start_restore_file(cmd):
    return plugin.start_restore_file(cmd)


def end_restore_file():
    return plugin.end_restore_file()


def restore_object_data(rop):
    return plugin.restore_object_data(rop)


def plugin_io(iop):
    return plugin.plugin_io(iop)


def create_file(restorepkt):
    return plugin.create_file(restorepkt)


def set_file_attributes(restorepkt):
    return plugin.set_file_attributes(restorepkt)


def check_file(fname):
    return plugin.check_file(fname)


def get_acl(acl):
    return plugin.get_acl(acl)


def set_acl(acl):
    return plugin.set_acl(acl)


def get_xattr(xattr):
    return plugin.get_xattr(xattr)


def set_xattr(xattr):
    return plugin.set_xattr(xattr)


def handle_backup_file(savepkt):
    return plugin.handle_backup_file(savepkt)
