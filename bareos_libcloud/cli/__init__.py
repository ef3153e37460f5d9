"""``bareos-libcloud``: what a FileSet's ``Plugin =`` line will do, before the first job runs.

    bareos-libcloud check 'python3:module_name=bareos-fd-libcloud:provider=S3:credentials_file=...'
    bareos-libcloud size --file /etc/bareos/photos.plugin --since 2024-05-01
    python3 -m bareos_libcloud plan 'provider=S3_RGW:...'
    bareos-libcloud restore-check --file ... --restore-options 'python3:restore_to=bucket:restore_bucket=x'

It takes the very option string of the ``Plugin =`` line (with or without the ``python3:``,
``module_path`` and ``module_name`` parts, which bareos-fd strips before the plugin sees the
rest) and runs the job's own code on it: the options are validated by ``lines.build_options``
(one line after the other, as the job does), the driver is made by ``driver.make_driver``, and
buckets and objects come from ``listing.list_all``, the lister's generator, which applies
buckets_include/buckets_exclude, prefix and shard exactly as in a job.  What an Incremental
would save is decided by ``backup.ChangePolicy`` with the line's ``incremental_margin``.

This is an ordinary Python process, not bareos-fd: libcloud runs here in-process.

Exit status: 0 fine, 1 problems (a warning or an error the job would report, or a failed
connection), 2 bad options (the job would fail at its start).  No secret is ever printed.
"""

import argparse
import os
import sys

from .. import __version__
from ..options import OptionError
from .check import cmd_check
from .common import BAD, BAD_OPTIONS, Report, Stop, load_lines, read_plugin_file
from .plan import SAMPLE_OBJECTS, SAMPLE_SECONDS, cmd_plan
from .restore_check import cmd_restore_check
from .walk import cmd_ls, cmd_size, parse_since


COMMANDS = {
    "check": (cmd_check, "validate the options with the job's code, connect, confirm the credentials "
                         "and the buckets the line selects"),
    "ls": (cmd_ls, "list the objects a Full (or, with --since, an Incremental) saves, as Bareos names them"),
    "size": (cmd_size, "objects and bytes per bucket that a Full (or an Incremental, --since) saves"),
    "plan": (cmd_plan, "the job's processes and memory, and a rough duration from a few sample GETs"),
    "restore-check": (cmd_restore_check, "whether a restore into buckets (restore_to=bucket) may write where it "
                                         "would, without leaving an object there"),
}


def parser():
    top = argparse.ArgumentParser(
        prog="bareos-libcloud",
        description="Check what a FileSet's bareos-libcloud Plugin = line will do, with the plugin's own code, "
                    "before the first job runs.",
        epilog="Exit status: 0 fine, 1 problems, 2 bad options. No secret is printed: give keys in "
               "credentials_file.")
    top.add_argument("--version", action="version", version="bareos-libcloud %s" % __version__)
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for name, (_, text) in COMMANDS.items():
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("plugin", nargs="*", metavar="PLUGIN_STRING",
                         help="the FileSet's Plugin = string (python3:module_name=...:provider=...), with or "
                              "without its python3, module_path and module_name parts; several: one per "
                              "Plugin = line of the FileSet")
        sub.add_argument("--file", "-f", metavar="FILE",
                         help="a file holding the plugin string(s): the FileSet's Plugin = statements, or "
                              "one option string per line")
        if name == "restore-check":
            sub.add_argument("--restore-options", metavar="OPTIONS",
                             help="the restore's plugin options, as bconsole's pluginoptions= gives them "
                                  "(python3:restore_to=bucket:restore_bucket=NAME:provider=...); they go over "
                                  "the line's as in the restore job")
        elif name != "check":
            sub.add_argument("--since", metavar="WHEN",
                             help="what an Incremental since WHEN saves: a date and time (UTC unless a zone "
                                  "is given: 2024-05-01, '2024-05-01 12:00:00+02:00'), @EPOCH, or a time ago "
                                  "(36h, 7d)")
            sub.add_argument("--accurate", action="store_true",
                             help="with --since: the Job has Accurate = yes (no incremental_margin)")
        if name == "plan":
            sub.add_argument("--sample", type=int, default=SAMPLE_OBJECTS, metavar="N",
                             help="objects to GET for the duration (default %d; 0: none)" % SAMPLE_OBJECTS)
            sub.add_argument("--sample-seconds", type=float, default=SAMPLE_SECONDS, metavar="S",
                             help="time the sample GETs may take at most (default %d)" % SAMPLE_SECONDS)
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    report = Report()
    try:
        if args.file and args.plugin:
            report.out("bad options: give the plugin string or --file, not both")
            return BAD_OPTIONS
        if not args.file and not args.plugin:
            report.out("bad options: give the FileSet's plugin string (or --file FILE)")
            return BAD_OPTIONS
        try:
            texts = read_plugin_file(args.file) if args.file else args.plugin
            args.since_epoch = parse_since(args.since) if getattr(args, "since", None) else 0
        except OptionError as exc:
            report.out("bad options: %s" % exc)
            return BAD_OPTIONS
        if getattr(args, "sample", 0) < 0 or getattr(args, "sample_seconds", 0) < 0:
            report.out("bad options: --sample and --sample-seconds cannot be negative")
            return BAD_OPTIONS
        if getattr(args, "accurate", False) and not args.since_epoch:
            report.out("bad options: --accurate needs --since (a Full saves every object)")
            return BAD_OPTIONS
        lines = load_lines(texts, report)
        return COMMANDS[args.command][0](lines, args, report)
    except Stop as stop:
        return stop.status
    except KeyboardInterrupt:
        report.clear_progress()
        return 130
    except BrokenPipeError:  # `bareos-libcloud ls ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BAD
    except Exception as exc:  # noqa: BLE001 - one line, secrets masked, never a traceback
        report.problem("error", "%s: %s" % (type(exc).__name__, exc))
        return BAD
