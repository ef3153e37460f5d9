"""Jobs through the emulated file daemon (tests/fdemu), each in a child process: (a), (d), (r), (e), (l), (m)."""

import json
import os
import subprocess
import sys
import time

from .common import ENTRY, REPO
from .pyspy import pyspy_exe
from .sampler import TreeSampler, vm_status


def fd_job_main(spec_json):
    """Runs in the child: one FileDaemon job; prints one JSON line."""
    from fdemu import FileDaemon

    import fdemu.backup
    import fdemu.daemon

    spec = json.loads(spec_json)
    fd = FileDaemon(spec["workdir"])
    ended = []
    original = fdemu.daemon.run_backup

    at_end = {}
    if spec.get("tracemalloc"):
        import tracemalloc

        tracemalloc.start(1)

    def timed_run_backup(*a, **kw):
        try:
            return original(*a, **kw)
        finally:
            ended.append(time.monotonic())  # job end: before the emulator persists its catalog
            at_end["vm_rss"] = vm_status(os.getpid(), "VmRSS:")
            at_end["vm_hwm"] = vm_status(os.getpid(), "VmHWM:")
            if spec.get("tracemalloc"):
                # who still holds memory when the job ends: live Python allocations by source file
                stats = tracemalloc.take_snapshot().statistics("filename")
                at_end["tracemalloc"] = [(st.traceback[0].filename.replace(REPO + "/", ""), st.size, st.count)
                                         for st in stats[:15]]
                at_end["tracemalloc_total"] = sum(st.size for st in stats)
                at_end["tracemalloc_peak"] = tracemalloc.get_traced_memory()[1]

    fdemu.daemon.run_backup = timed_run_backup
    # The time Bareos spends on objects' data: IO_OPEN, every IO_READ and IO_CLOSE (for (e): the
    # large object streamed, without the job's start-up, as the raw GET is timed after its own).
    streaming = [0.0]
    read_data = fdemu.backup.BackupRun.read_data

    def timed_read_data(*a, **kw):
        t = time.perf_counter()
        try:
            return read_data(*a, **kw)
        finally:
            streaming[0] += time.perf_counter() - t

    fdemu.backup.BackupRun.read_data = timed_read_data
    t0 = time.monotonic()
    result = fd.backup(spec["plugin"], level=spec["level"], accurate=spec["accurate"],
                       job_name=spec.get("job_name", "backup-job"), signature=spec.get("signature", "MD5"))
    t1 = time.monotonic()
    seconds = (ended[0] if ended else t1) - t0
    vol = os.path.join(spec["workdir"], "volumes")
    volume_bytes = sum(os.path.getsize(os.path.join(vol, n)) for n in os.listdir(vol)) if os.path.isdir(vol) else 0
    texts = [t.strip() for _, t in result.messages]
    print("FDJOB " + json.dumps(dict(
        seconds=seconds, catalog_seconds=t1 - seconds - t0, status=result.status, level=result.level, files=len(result.files),
        bytes=sum(r.size for r in result.files), volume_bytes=volume_bytes,
        job_thread_cpu=result.job_thread_cpu, plugin_cpu=result.plugin_cpu, streaming_seconds=streaming[0],
        messages=[t for t in texts if "objects listed" in t or "rror" in t or "arning" in t][-5:], **at_end)),
          flush=True)


def job_thread_share(res, objects):
    """(job thread CPU ms per object, the plugin's part of it, the plugin's share as text)."""
    total, plugin = res["job_thread_cpu"], res["plugin_cpu"]
    return (total * 1000 / objects, plugin * 1000 / objects,
            "the plugin %.0f%% of the job thread's CPU" % (100 * plugin / total if total else 0))


def cpu_comparison(full, raw):
    """The plugin's CPU per object (its job-thread calls and its helpers) against the raw GET loop's,
    and the emulated daemon's own part, which the raw loop does not have."""
    files = full["files"] or 1
    helpers = sum(v for k, v in full["cpu"].items() if not k.startswith("job process"))
    plugin = (full["plugin_cpu"] + helpers) * 1000 / files
    emulator = (full["job_thread_cpu"] - full["plugin_cpu"]) * 1000 / files
    loop = raw["client_cpu"] * 1000 / raw["objects"]
    return ("the plugin %.3f ms (job thread %.3f + helpers %.3f) = %.1fx the raw GET loop's %.3f ms; "
            "the emulated daemon's own work %.3f ms more"
            % (plugin, full["plugin_cpu"] * 1000 / files, helpers * 1000 / files, plugin / loop if loop else 0,
               loop, emulator))


def run_fd_job(workdir, plugin, level="F", accurate=False, job_name="backup-job", pyspy=None, trace=False,
               signature="MD5", pyspy_args=()):
    """Run one job in a child process, sampling its process tree. Returns a dict; ``vm_rss``/``vm_hwm``
    are the job process's at the job's end, before the emulator writes its catalog; with ``trace``,
    ``tracemalloc`` lists the live Python allocations of the job process by source file then; ``pyspy_args``
    are added to the ``py-spy record`` command (e.g. ``--gil``)."""
    spec = json.dumps(dict(workdir=workdir, plugin=plugin, level=level, accurate=accurate, job_name=job_name,
                           tracemalloc=trace, signature=signature))
    cmd = [sys.executable, ENTRY, "--_fd-job", spec]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    spy = None
    if pyspy:
        spy = subprocess.Popen([pyspy_exe(), "record", "--pid", str(proc.pid), "--subprocesses", "--rate", "200",
                                "--format", "raw", "--nonblocking", "-o", pyspy] + list(pyspy_args),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    with TreeSampler(proc.pid) as sampler:
        out, err = proc.communicate(timeout=3600)
    if spy is not None:
        try:
            spy.wait(60)
        except subprocess.TimeoutExpired:
            spy.terminate()
    line = [l for l in out.splitlines() if l.startswith("FDJOB ")]
    if proc.returncode != 0 or not line:
        raise RuntimeError("fd job failed (rc %s):\n%s\n%s" % (proc.returncode, out[-3000:], err[-3000:]))
    res = json.loads(line[-1][6:])
    res["peak_rss"] = sampler.peak
    res["peak_pss"] = sampler.peak_pss
    res["peak_procs"] = sampler.peak_procs
    res["cpu"] = sampler.cpu_by_role()
    res["rss_samples"] = sampler.samples
    res["peak_by_role"] = sampler.at_peak
    res["hwm_by_role"] = sampler.peaks_by_role()
    return res
