"""``restore-check``: may these credentials restore into the buckets a restore would write?

The restore's options (bconsole's ``pluginoptions``, e.g. ``restore_to=bucket:restore_bucket=x``)
go over the line's as the job puts them (lines.build_restore_options), the driver is the job's,
and each target bucket is probed without leaving an object in it (uploader.probe_write).
"""

from ..answers import FetchError
from ..job.lines import build_restore_options
from ..options import OptionError, split_plugin_string
from .common import BAD, BAD_OPTIONS, OK, Stop, connect, job_text, line_label, retry_policy


def cmd_restore_check(lines, args, report):
    overrides = _overrides(args.restore_options or "", report)
    for line in lines:
        where = line_label(lines, line)
        try:
            opts = build_restore_options(overrides, line.text, need_remote=True)
        except OptionError as exc:
            report.out("bad options%s: %s" % (" of %s" % where if where else "", exc))
            raise Stop(BAD_OPTIONS) from None
        report.secrets(opts.secrets)
        if opts.restore_to != "bucket":
            report.finding("ok", "restore_to=%s: checked as restore_to=bucket would restore" % opts.restore_to, where)
        target = _Target(opts)
        drv, _ = connect(target, report, where)
        buckets = [opts.restore_bucket] if opts.restore_bucket else _backed_up_buckets(line, report, where)
        for bucket in buckets:
            _check_bucket(drv, bucket, opts.restore_prefix, report, where)
    return BAD if report.problems else OK


class _Target:
    """What common.connect reads of a line: its options (here the restore's)."""

    def __init__(self, opts):
        self.opts = opts


def _overrides(text, report):
    """The restore's own options as the job finds them (``python3:`` and module names dropped)."""
    options = job_text(text)
    try:
        split_plugin_string(options)
    except OptionError as exc:
        report.out("bad options: --restore-options: %s" % exc)
        raise Stop(BAD_OPTIONS) from None
    return options


def _backed_up_buckets(line, report, where):
    """The buckets a restore without restore_bucket writes: each object's own, i.e. the ones the
    line backs up (its buckets_include, or what its lister selects in the backup's store)."""
    if line.opts.buckets_include:
        return list(line.opts.buckets_include)
    from ..helper.listing import list_all

    drv, config = connect(line, report, where)
    messages = list_all(drv, config, retry_policy(line.opts, {}))
    try:
        for message in messages:
            if message[0] == "ready":
                return list(message[1])
            if message[0] == "fatal":
                report.finding("error", "the backup's store cannot be listed to find its buckets: %s" % message[1],
                               where)
                return []
    finally:
        messages.close()
    return []


def _check_bucket(drv, bucket, prefix, report, where):
    from libcloud.storage.types import ContainerDoesNotExistError

    from ..answers import translate
    from ..helper.uploader import probe_write

    try:
        drv.get_container(bucket)
    except ContainerDoesNotExistError:
        report.finding("warning", "bucket %r does not exist: the restore creates it, so these credentials "
                                  "need the permission to create buckets" % bucket, where)
        return
    except Exception as exc:  # noqa: BLE001 - the store's answer, named
        report.finding("error", "bucket %r cannot be reached: %s" % (bucket, translate(exc, bucket)), where)
        return
    try:
        how = probe_write(drv, bucket)
    except FetchError as exc:
        report.finding("error", "these credentials may not write into bucket %r: %s" % (bucket, exc), where)
        return
    into = " (under %r)" % prefix if prefix else ""
    report.finding("ok", "bucket %r can be restored into%s: %s" % (bucket, into, how), where)
