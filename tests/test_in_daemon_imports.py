"""The plugin's job side imports nothing that breaks in a bareos-fd sub-interpreter.

Compiled wheels (mypyc, PyO3) fail from the second job on in bareos-fd (real-fd-trace.md 8a),
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
importlib.import_module('bareos_libcloud.plugin')
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
