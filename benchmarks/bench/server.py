"""The local S3 server (moto or radosgw) and the CPU time of its daemons."""

import os

from .common import GiB


def start_server(kind, data_bytes):
    from servers import MotoServer, RadosGW

    if kind == "moto":
        return MotoServer().start(), "moto_server"
    # memstore keeps ~1.9x the stored bytes in the OSD's RAM: only if that is comfortably small
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if data_bytes * 2.2 < ram * 0.4:
        store_bytes = max(4 * GiB, int(data_bytes * 1.5) + 2 * GiB)
        srv = RadosGW(store="memstore", store_bytes=store_bytes)
        desc = "radosgw, memstore (%.1f GiB device)" % (store_bytes / GiB)
    else:
        store_bytes = max(8 * GiB, int(data_bytes * 2) + 4 * GiB)
        srv = RadosGW(store="bluestore", store_bytes=store_bytes)
        desc = "radosgw, bluestore (%.1f GiB sparse file)" % (store_bytes / GiB)
    return srv.start(), desc


def server_pids(server):
    """{name: pid} of the server's daemons (for CPU accounting)."""
    out = {}
    if getattr(server, "proc", None) is not None:
        out["moto_server"] = server.proc.pid
    ceph_dir = getattr(server, "ceph_dir", None)
    if ceph_dir:
        for name in ("client.rgw.x", "osd.0", "mon.a"):
            try:
                with open(os.path.join(ceph_dir, "run", name + ".pid")) as f:
                    out[{"client.rgw.x": "radosgw", "osd.0": "ceph-osd", "mon.a": "ceph-mon"}[name]] = int(f.read())
            except (OSError, ValueError):
                pass
    return out


def cpu_seconds(pids):
    import psutil

    out = {}
    for name, pid in pids.items():
        try:
            t = psutil.Process(pid).cpu_times()
            out[name] = t.user + t.system
        except psutil.Error:
            pass
    return out
