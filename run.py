#!/usr/bin/env python3
"""Single entry point for bareos-libcloud's demo and test suite.

    python3 run.py demo [args]         run tests/demo.py's main()
    python3 run.py test [pytest args]  run `python -m pytest tests [pytest args]`

Needs nothing but a python3 (>= 3.10). On first use it

1. creates a virtualenv in .venv (``python3 -m venv``; when ensurepip is missing, as on a Debian
   without python3-venv, it creates the venv ``--without-pip`` and bootstraps pip from the
   newest pip wheel on PyPI),
2. runs ``pip install -e '.[test]'`` (saying what it is doing while it runs) and records the
   hash of pyproject.toml in a stamp file under .venv, so later runs skip the install until
   pyproject.toml changes,
3. re-executes itself with the venv's python and runs the requested action there.

For ``test`` it also makes sure Ceph (ceph-mon, ceph-osd, radosgw) is installed for the radosgw
suite: as root it runs apt-get; otherwise it prints a notice that the suite will be skipped
(under CI=true the suite fails instead of skipping, see tests/conftest.py).  Likewise it installs
Azurite (Microsoft's Azure Blob emulator, from the npm registry) into .venv/azurite for the Azure
suite, with Debian's nodejs and npm first when they are missing and it runs as root, and
OpenStack Swift (from PyPI) into a virtualenv of its own, .venv/swift, for the Swift suite.

Environment knobs:
  BAREOS_LIBCLOUD_SKIP_CEPH_INSTALL=1  never run apt-get for Ceph
  BAREOS_LIBCLOUD_SKIP_AZURITE_INSTALL=1  never run npm (or apt-get) for Azurite
  BAREOS_LIBCLOUD_SKIP_SWIFT_INSTALL=1  never install Swift into .venv/swift
  BAREOS_LIBCLOUD_VENV_WITHOUT_PIP=1   force the "no ensurepip" path (to test the pip bootstrap)
"""

import hashlib
import importlib.util
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(ROOT, ".venv")
VENV_PY = os.path.join(VENV, "bin", "python")
STAMP = os.path.join(VENV, ".bareos-libcloud-installed")
LOG_DIR = os.path.join(VENV, "logs")
TESTS = os.path.join(ROOT, "tests")
PIP_JSON = "https://pypi.org/pypi/pip/json"
IN_VENV_FLAG = "BAREOS_LIBCLOUD_RUN_IN_VENV"
CEPH_BINARIES = ("ceph-mon", "ceph-osd", "radosgw")
CEPH_PACKAGES = ("ceph-mon", "ceph-osd", "radosgw")

USAGE = """usage: python3 run.py demo [args]
       python3 run.py test [pytest args]"""


def say(msg):
    print("run.py: " + msg, file=sys.stderr, flush=True)


def die(msg, code=1):
    say("ERROR: " + msg)
    sys.exit(code)


def truthy(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def running_in_venv():
    return os.path.realpath(sys.prefix) == os.path.realpath(VENV)


# --------------------------------------------------------------------------------------------
# bootstrap (runs in whatever python3 the user started us with)
# --------------------------------------------------------------------------------------------

def venv_python_works():
    if not os.path.exists(VENV_PY):
        return False
    try:
        return subprocess.run([VENV_PY, "-c", "import sys"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0
    except OSError:
        return False


def venv_has_pip():
    return subprocess.run([VENV_PY, "-m", "pip", "--version"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def venv_missing_message(detail):
    ver = "%d.%d" % sys.version_info[:2]
    return ("cannot create a virtualenv with %s (%s).\n"
            "  On Debian/Ubuntu install the venv module:  apt-get install python3-venv\n"
            "  (or python%s-venv), then run this command again." % (sys.executable, detail, ver))


def create_venv():
    if os.path.exists(VENV):
        say("%s is broken (its python does not run); recreating it" % VENV)
        shutil.rmtree(VENV)
    try:
        import venv  # noqa: F401  (only to check that the module exists)
    except ImportError as e:
        die(venv_missing_message("no venv module: %s" % e))

    want_pip = (importlib.util.find_spec("ensurepip") is not None
                and not truthy("BAREOS_LIBCLOUD_VENV_WITHOUT_PIP"))
    if want_pip:
        say("creating virtualenv %s with %s" % (VENV, sys.executable))
        r = subprocess.run([sys.executable, "-m", "venv", VENV],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode == 0:
            return
        say("`python3 -m venv` failed, retrying --without-pip:\n" + r.stdout.strip())
        shutil.rmtree(VENV, ignore_errors=True)
    say("creating virtualenv %s --without-pip (no ensurepip here)" % VENV)
    r = subprocess.run([sys.executable, "-m", "venv", "--without-pip", VENV],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        shutil.rmtree(VENV, ignore_errors=True)
        die(venv_missing_message(r.stdout.strip() or "exit %d" % r.returncode))


def bootstrap_pip():
    """Install pip into the venv from the newest pip wheel on PyPI (no ensurepip needed)."""
    say("bootstrapping pip from PyPI")
    try:
        with urllib.request.urlopen(PIP_JSON, timeout=60) as resp:
            meta = json.load(resp)
    except Exception as e:  # noqa: BLE001 - any network error is fatal here
        die("cannot reach PyPI to bootstrap pip (%s).\n"
            "  Install pip another way (apt-get install python3-venv) and run again." % e)
    wheels = [u for u in meta.get("urls", []) if u.get("packagetype") == "bdist_wheel"]
    if not wheels:
        die("PyPI lists no wheel for pip %s" % meta.get("info", {}).get("version"))
    wheel = wheels[0]
    tmp = tempfile.mkdtemp(prefix="bareos-libcloud-pip-")
    try:
        path = os.path.join(tmp, wheel["filename"])
        # PyPI gives absolute URLs; a mirror may answer with relative ones
        url = urllib.parse.urljoin(PIP_JSON, wheel["url"])
        with urllib.request.urlopen(url, timeout=120) as resp:
            data = resp.read()
        want = wheel.get("digests", {}).get("sha256")
        if want and hashlib.sha256(data).hexdigest() != want:
            die("sha256 mismatch for %s" % url)
        with open(path, "wb") as f:
            f.write(data)
        # A wheel is a zip with pip at its top level, so python can run pip straight from it.
        r = subprocess.run([VENV_PY, os.path.join(path, "pip"), "install", "--quiet", path])
        if r.returncode != 0:
            die("installing %s into the venv failed (exit %d)" % (wheel["filename"], r.returncode))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say("pip %s installed into the venv" % meta["info"]["version"])


def project_hash():
    h = hashlib.sha256()
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        h.update(f.read())
    return h.hexdigest()


class Progress:
    """What a long pip run is doing, from its output: one line rewritten in place on a terminal,
    otherwise a line every PROGRESS_EVERY seconds."""

    PROGRESS_EVERY = 10.0

    def __init__(self, what):
        self.what = what
        self.t0 = time.monotonic()
        self.said = self.t0
        self.doing = "starting"
        self.collected = 0
        self.tty = sys.stderr.isatty()
        self.shown = False

    def line(self, text):
        """One line of pip's output."""
        text = text.strip()
        if text.startswith("Collecting "):
            self.collected += 1
            self.doing = "collecting " + text.split()[1]
        elif text.startswith(("Downloading ", "Building wheel", "Installing build dependencies",
                              "Getting requirements", "Preparing ")):
            self.doing = text.split(" (")[0].rstrip(".:").lower()
            if self.doing.startswith("downloading "):  # a wheel's or an archive's name: its project
                self.doing = "downloading " + os.path.basename(self.doing.split()[1]).split("-")[0]
        elif text.startswith("Installing collected packages"):
            names = text.partition(":")[2]
            self.doing = "installing %d packages into .venv" % (names.count(",") + 1)

    def tick(self):
        now = time.monotonic()
        status = "%s: %.0f s, %d packages collected; %s" % (self.what, now - self.t0, self.collected, self.doing)
        if self.tty:
            width = shutil.get_terminal_size().columns - 1  # a wrapped line would not be rewritten
            sys.stderr.write("\r\033[K" + status[:width])
            sys.stderr.flush()
            self.shown = True
        elif now - self.said >= self.PROGRESS_EVERY:
            self.said = now
            say(status)

    def done(self):
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def run_logged(cmd, log, what):
    """Run ``cmd`` in ROOT with its output into ``log``, showing progress; its exit status."""
    progress = Progress(what)
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        pending = b""
        try:
            while True:
                if select.select([proc.stdout], [], [], 0.5)[0]:
                    data = os.read(proc.stdout.fileno(), 65536)
                    if not data:
                        break
                    out.write(data)
                    *lines, pending = (pending + data).split(b"\n")
                    for line in lines:
                        progress.line(line.decode("utf-8", "replace"))
                progress.tick()
        finally:
            progress.done()
            proc.stdout.close()
        return proc.wait()


def install_project():
    digest = project_hash()
    try:
        with open(STAMP) as f:
            if f.read().strip() == digest:
                return
    except OSError:
        pass
    say("pip install -e '.[test]': the plugin, libcloud and the test tools from PyPI (about a minute "
        "the first time; output in %s/pip-install.log)" % LOG_DIR)
    os.makedirs(LOG_DIR, exist_ok=True)
    log = os.path.join(LOG_DIR, "pip-install.log")
    t0 = time.monotonic()
    returncode = run_logged([VENV_PY, "-m", "pip", "install", "--disable-pip-version-check", "-e", ".[test]"],
                            log, "installing")
    if returncode != 0:
        with open(log, errors="replace") as f:
            sys.stderr.write(f.read()[-6000:])
        die("pip install -e '.[test]' failed (exit %d), full log: %s" % (returncode, log))
    with open(STAMP, "w") as f:
        f.write(digest + "\n")
    say("installed in %.1fs" % (time.monotonic() - t0))


def bootstrap_and_reexec(argv):
    if sys.version_info < (3, 10):
        die("python >= 3.10 needed, this is %s" % sys.version.split()[0])
    if os.environ.get(IN_VENV_FLAG):
        die("re-executed into %s but sys.prefix is %s" % (VENV_PY, sys.prefix))
    if not venv_python_works():
        create_venv()
    if not venv_has_pip():
        bootstrap_pip()
    install_project()
    env = dict(os.environ)
    env[IN_VENV_FLAG] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(VENV_PY, [VENV_PY, os.path.abspath(__file__)] + argv, env)


# --------------------------------------------------------------------------------------------
# actions (run inside the venv)
# --------------------------------------------------------------------------------------------

def ceph_missing():
    return [b for b in CEPH_BINARIES if shutil.which(b) is None]


def ensure_ceph():
    """Install Ceph for the radosgw suite when it is missing and we may; never raises."""
    missing = ceph_missing()
    if not missing:
        return
    if truthy("BAREOS_LIBCLOUD_SKIP_CEPH_INSTALL"):
        say("NOTICE: %s missing and BAREOS_LIBCLOUD_SKIP_CEPH_INSTALL is set: the radosgw "
            "suite will be skipped (or fail under CI)." % ", ".join(missing))
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        bar = "=" * 78
        why = "not root" if os.geteuid() != 0 else "no apt-get"
        print("\n%s\nNOTICE: %s not installed and %s: the radosgw (real S3 server) test suite\n"
              "will be SKIPPED. To run it, as root:\n"
              "  apt-get install -y --no-install-recommends %s\n%s\n"
              % (bar, ", ".join(missing), why, " ".join(CEPH_PACKAGES), bar),
              file=sys.stderr, flush=True)
        return
    pkgs = list(CEPH_PACKAGES)
    os.makedirs(LOG_DIR, exist_ok=True)
    log = os.path.join(LOG_DIR, "ceph-install.log")
    say("installing %s for the radosgw suite (apt-get, about 45 s; log %s)"
        % (" ".join(pkgs), log))
    _install("Ceph", "the radosgw suite", [["apt-get", "update", "-q"],
                                          ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + pkgs],
             log, lambda: not ceph_missing())


def _install(what, suite, cmds, log, installed):
    """Run ``cmds`` one after the other into ``log``; say how it went (the log's end if it failed)."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    t0 = time.monotonic()
    with open(log, "w") as out:
        for cmd in cmds:
            out.write("$ %s\n" % " ".join(cmd))
            out.flush()
            if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                              stdin=subprocess.DEVNULL).returncode != 0:
                break
    if installed():
        say("%s installed in %.0fs" % (what, time.monotonic() - t0))
        return
    with open(log, errors="replace") as f:
        sys.stderr.write(f.read()[-8000:])
    say("WARNING: installing %s failed (log above, full log %s); %s will be skipped (or fail under CI)."
        % (what, log, suite))


def ensure_azurite():
    """Install Azurite into .venv/azurite for the Azure suite when it is missing; never raises."""
    sys.path.insert(0, TESTS)
    from servers import Azurite

    if Azurite.executable() is not None:
        return
    if truthy("BAREOS_LIBCLOUD_SKIP_AZURITE_INSTALL"):
        say("NOTICE: Azurite is not installed and BAREOS_LIBCLOUD_SKIP_AZURITE_INSTALL is set: "
            "the Azure suite will be skipped (or fail under CI).")
        return
    os.makedirs(LOG_DIR, exist_ok=True)
    log = os.path.join(LOG_DIR, "azurite-install.log")
    cmds = []
    if shutil.which("npm") is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            say("NOTICE: npm is not installed: the Azure suite (Azurite) will be SKIPPED. To run "
                "it, install Node.js and npm (apt-get install nodejs npm).")
            return
        cmds += [["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "--no-install-recommends", "nodejs", "npm"]]
    cmds.append(["npm", "install", "--prefix", os.path.join(VENV, "azurite"), "--no-audit", "--no-fund",
                 "azurite@%s" % Azurite.VERSION])
    say("installing Azurite %s for the Azure suite (npm, about 40 s; log %s)" % (Azurite.VERSION, log))
    _install("Azurite", "the Azure suite", cmds, log, lambda: Azurite.executable() is not None)


def ensure_swift():
    """Install OpenStack Swift into its own virtualenv .venv/swift for the Swift suite when it is
    missing; never raises.  Its own venv, because Swift's dependencies (eventlet, greenlet, ...)
    must not mix with the plugin's.  BAREOS_LIBCLOUD_SKIP_SWIFT_INSTALL=1 skips this."""
    sys.path.insert(0, TESTS)
    from servers import Swift

    if Swift.venv() is not None:
        return
    if os.environ.get("SWIFT_VENV") or truthy("BAREOS_LIBCLOUD_SKIP_SWIFT_INSTALL"):
        why = ("SWIFT_VENV=%s holds no Swift" % os.environ["SWIFT_VENV"] if os.environ.get("SWIFT_VENV")
               else "BAREOS_LIBCLOUD_SKIP_SWIFT_INSTALL is set")
        say("NOTICE: Swift is not installed and %s: the Swift suite will be skipped (or fail under CI)." % why)
        return
    from importlib.metadata import PackageNotFoundError, version

    os.makedirs(LOG_DIR, exist_ok=True)
    log = os.path.join(LOG_DIR, "swift-install.log")
    target = os.path.join(VENV, "swift")
    python = os.path.join(target, "bin", "python")
    pip_args = ["install", "--disable-pip-version-check", "--only-binary", ":all:", "swift==%s" % Swift.VERSION]
    try:
        pip_version = tuple(int(part) for part in version("pip").split(".")[:2] if part.isdigit())
    except PackageNotFoundError:
        pip_version = ()
    if pip_version >= (22, 3):  # this venv's pip installs into the other one (--python): no ensurepip needed
        cmds = [[sys.executable, "-m", "venv", "--clear", "--without-pip", target],
                [sys.executable, "-m", "pip", "--python", python] + pip_args]
    else:
        cmds = [[sys.executable, "-m", "venv", "--clear", target], [python, "-m", "pip"] + pip_args]
    say("installing OpenStack Swift %s for the Swift suite (pip, into .venv/swift, about 10 s; log %s)"
        % (Swift.VERSION, log))
    _install("Swift", "the Swift suite", cmds, log, lambda: Swift.venv() is not None)


def looks_like_path(arg):
    if arg.startswith("-"):
        return False
    base = arg.split("::", 1)[0]
    return "::" in arg or base.endswith(".py") or (
        os.path.exists(os.path.join(ROOT, base)) and base.rstrip("/") not in ("", ".")
        and os.path.abspath(os.path.join(ROOT, base)).startswith(TESTS))


def action_test(args):
    ensure_ceph()
    ensure_azurite()
    ensure_swift()
    # `run.py test tests/test_x.py::test_y` should run just that, not all of tests/ too.
    targets = [] if any(looks_like_path(a) for a in args) else ["tests"]
    cmd = [sys.executable, "-m", "pytest"] + targets + list(args)
    say("$ " + " ".join(cmd))
    return subprocess.call(cmd, cwd=ROOT)


def action_demo(args):
    path = os.path.join(TESTS, "demo.py")
    if not os.path.exists(path):
        say("the demo is not written yet: %s does not exist." % path)
        return 2
    sys.path.insert(0, TESTS)
    spec = importlib.util.spec_from_file_location("demo", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["demo"] = mod
    spec.loader.exec_module(mod)
    if not hasattr(mod, "main"):
        say("%s has no main()" % path)
        return 2
    sys.argv = [path] + list(args)
    rc = mod.main()
    return rc if isinstance(rc, int) else 0


ACTIONS = {"test": action_test, "demo": action_demo}


def main(argv):
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] not in ACTIONS:
        print(USAGE, file=sys.stderr)
        return 2
    if not running_in_venv():
        bootstrap_and_reexec(argv)  # does not return
    install_project()  # no-op when the stamp matches (it may have been run as .venv/bin/python)
    os.chdir(ROOT)
    return ACTIONS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
