"""The plugin's job side imports nothing that breaks in a bareos-fd sub-interpreter.

Compiled wheels (mypyc, PyO3) fail from the second job on in bareos-fd (real-fd-trace 8a),
so the job's interpreter must not import libcloud, requests or any third-party module.
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = r"""
import sys, importlib
before = set(sys.modules)
sys.modules['bareosfd'] = type(sys)('bareosfd')
importlib.import_module('bareos_libcloud.job.plugin')
new = sorted(set(sys.modules) - before)
third_party = [m for m in new if m.split('.')[0] not in sys.stdlib_module_names
               and m.split('.')[0] not in ('bareos_libcloud', 'bareosfd', '__mp_main__')]
print(' '.join(third_party))
"""


def test_job_side_imports_only_stdlib():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", "the job side imports third-party modules: %s" % out


HELPER_PACKAGE_PROBE = r"""
import sys, importlib, pkgutil
sys.modules['bareosfd'] = type(sys)('bareosfd')
job = importlib.import_module('bareos_libcloud.job')
for module in pkgutil.iter_modules(job.__path__, 'bareos_libcloud.job.'):
    importlib.import_module(module.name)
print(' '.join(sorted(m for m in sys.modules if m.split('.')[:2] == ['bareos_libcloud', 'helper'])))
"""


def test_the_job_side_imports_nothing_of_the_helper_package():
    """bareos_libcloud.helper is the helper processes' code (libcloud, pycurl, threads): the job
    names the helpers' entry points through bareos_libcloud.protocol, which imports the helper
    package only when it runs, in the helper."""
    out = subprocess.run(
        [sys.executable, "-c", HELPER_PACKAGE_PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", "the job side imports the helper package: %s" % out


ERROR_PATH_PROBE = r"""
import http.client, socket, sys, importlib
sys.modules['bareosfd'] = type(sys)('bareosfd')
importlib.import_module('bareos_libcloud.job.plugin')
from bareos_libcloud import answers
before = set(sys.modules)
# what a direct stream on the job thread hands to answers.translate when a transfer breaks
got = [type(answers.translate(exc, 'k')).__name__ for exc in (
    ConnectionResetError('reset'), socket.timeout('timed out'), http.client.IncompleteRead(b'', 5),
    EOFError(), ValueError('odd'))]
print(' '.join(got))
print(' '.join(sorted(m for m in set(sys.modules) - before if m.split('.')[0] not in sys.stdlib_module_names)))
"""


def test_a_broken_direct_stream_imports_nothing_more_on_the_job_side():
    """A transfer that breaks on the job thread (direct.py) is classified without importing
    libcloud there: its requests dependency brings compiled modules that fail from the
    second job on (real-fd-trace 8a), which would turn a retry into an ImportError."""
    out = subprocess.run(
        [sys.executable, "-c", ERROR_PATH_PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0].split() == ["Transient", "Transient", "Transient", "Transient", "FetchError"]
    assert len(out) == 1 or out[1] == "", "classifying the error imported: %s" % out[1]


def test_the_job_side_does_not_load_http_client_until_a_direct_stream():
    """Every job's sub-interpreter imports the plugin afresh; http.client (and ssl, email with
    it) is needed only by direct streams of large objects."""
    probe = ("import sys, importlib; sys.modules['bareosfd'] = type(sys)('bareosfd'); "
             "importlib.import_module('bareos_libcloud.job.plugin'); "
             "print(' '.join(m for m in ('http.client', 'ssl', 'email.parser') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "", "imported at load: %s" % out
