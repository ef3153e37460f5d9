"""RSS, PSS and CPU of a process tree, sampled while it runs, grouped by role."""

import collections
import os
import threading


def vm_status(pid, field):
    """A size field of /proc/PID/status (``VmHWM:``, ``VmRSS:``) in bytes; 0 if gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _vm_hwm(pid):
    """The kernel's peak resident set size of ``pid`` (VmHWM), in bytes; 0 if gone."""
    return vm_status(pid, "VmHWM:")


def _pss(pid):
    """The proportional set size of ``pid`` in bytes (a page shared by k processes counts 1/k
    in each: helpers forked from the fork server share its pages); 0 if gone or unknown."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class TreeSampler:
    """Samples a process and all its descendants every ``interval`` s: the peak of the summed
    RSS, and each process's last CPU time (user+system), grouped by role; every
    ``PSS_EVERY``-th sample also the summed PSS (reading smaps_rollup walks page tables)."""

    PSS_EVERY = 10

    def __init__(self, pid, interval=0.05):
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.peak_pss = 0
        self.peak_procs = 0
        self.samples = 0
        self.cpu = {}  # pid -> (role, seconds)
        self.hwm = {}  # pid -> (role, VmHWM bytes: the kernel's own peak RSS of that process)
        self.pid_peak = {}  # pid -> (role, sampled peak RSS, its anonymous part)
        self.at_peak = {}  # role -> summed RSS at the sample with the largest total
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join()

    #: helper process names (worker._identify) -> role
    HELPER_ROLES = {"libcloud-list": "lister", "libcloud-fetch": "fetch helpers", "libcloud-sign": "signer"}

    @classmethod
    def _role(cls, proc, root_pid):
        """The process's role, or None while a forked helper has not named itself yet."""
        if proc.pid == root_pid:
            return "job process (emulator + plugin job thread)"
        if proc.name() in cls.HELPER_ROLES:
            return cls.HELPER_ROLES[proc.name()]
        try:
            cmd = " ".join(proc.cmdline())
        except Exception:  # noqa: BLE001
            cmd = ""
        if "resource_tracker" in cmd:
            return "multiprocessing resource tracker"
        if "forkserver" in cmd:
            return "fork server" if proc.ppid() == root_pid else None
        return os.path.basename(cmd.split(" ")[0]) if cmd else "other"

    def _run(self):
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        roles = {}
        while not self.stop_event.is_set():
            try:
                procs = [root] + root.children(recursive=True)
            except psutil.Error:
                break
            total = 0
            by_role = collections.defaultdict(int)
            count_role = collections.defaultdict(int)
            if self.samples % self.PSS_EVERY == 0:
                self.peak_pss = max(self.peak_pss, sum(_pss(proc.pid) for proc in procs))
            for proc in procs:
                try:
                    with proc.oneshot():
                        mem = proc.memory_info()
                        t = proc.cpu_times()
                except psutil.Error:
                    continue
                total += mem.rss
                if roles.get(proc.pid) is None:
                    try:
                        roles[proc.pid] = self._role(proc, self.pid)
                    except psutil.Error:
                        continue
                role = roles[proc.pid] or "helper starting"
                by_role[role] += mem.rss
                count_role[role] += 1
                self.cpu[proc.pid] = (role, t.user + t.system)
                old_peak = self.pid_peak.get(proc.pid, (role, 0, 0))
                if mem.rss > old_peak[1]:
                    self.pid_peak[proc.pid] = (role, mem.rss, mem.rss - mem.shared)
                hwm = _vm_hwm(proc.pid)
                if hwm:
                    self.hwm[proc.pid] = (role, hwm)
            self.samples += 1
            if total > self.peak:
                self.peak, self.peak_procs = total, len(procs)
                self.at_peak = {role: (rss, count_role[role]) for role, rss in by_role.items()}
            self.stop_event.wait(self.interval)

    def peaks_by_role(self):
        """{role: (processes, max per-process VmHWM, sum of VmHWM, max sampled anonymous RSS)}."""
        out = {}
        for pid, (role, hwm) in self.hwm.items():
            n, mx, sm, anon = out.get(role, (0, 0, 0, 0))
            a = self.pid_peak.get(pid, (role, 0, 0))[2]
            out[role] = (n + 1, max(mx, hwm), sm + hwm, max(anon, a))
        return out

    def cpu_by_role(self):
        out = collections.defaultdict(float)
        for role, seconds in self.cpu.values():
            out[role] += seconds
        return dict(out)


def short_role(role):
    return {"job process (emulator + plugin job thread)": "job", "fetch helpers": "fetch",
            "multiprocessing resource tracker": "tracker"}.get(role, role)
