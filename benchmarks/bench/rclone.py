"""rclone against the same server: (b), (d), (r)."""

import os
import shutil
import subprocess
import sys
import time

from .sampler import TreeSampler


def rclone_exe():
    exe = os.path.join(os.path.dirname(sys.executable), "rclone")
    return exe if os.path.exists(exe) else shutil.which("rclone")


def rclone_env(server):
    env = dict(os.environ)
    env.update({
        "RCLONE_CONFIG_BENCH_TYPE": "s3",
        "RCLONE_CONFIG_BENCH_PROVIDER": "Ceph",
        "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": server.key,
        "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": server.secret,
        "RCLONE_CONFIG_BENCH_ENDPOINT": server.endpoint_url,
        "RCLONE_CONFIG_BENCH_REGION": server.region,
        "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
        "RCLONE_CONFIG": "/dev/null",
    })
    return env


def run_rclone(server, args, stdout=subprocess.DEVNULL):
    cmd = [rclone_exe()] + args
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=rclone_env(server), stdout=stdout, stderr=subprocess.PIPE, text=True)
    with TreeSampler(proc.pid) as sampler:
        out, err = proc.communicate(timeout=3600)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), err[-2000:]))
    return seconds, sampler.peak, out


def rclone_version():
    try:
        out = subprocess.run([rclone_exe(), "version"], stdout=subprocess.PIPE, text=True, timeout=30).stdout
        return out.splitlines()[0].strip()
    except Exception:  # noqa: BLE001
        return "unknown"
