"""Paths, sizes, bucket names and the log line shared by every part of the benchmark."""

import os
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # benchmarks/
REPO = os.path.dirname(HERE)
TESTS = os.path.join(REPO, "tests")
sys.path.insert(0, TESTS)
sys.path.insert(1, REPO)
if HERE not in sys.path:
    sys.path.append(HERE)  # benchmarks/listing_server.py, also under ``python -m benchmarks.bench``

MiB = 1024 * 1024
GiB = 1024 * MiB
SEED = 20261123
LARGE_REF_BYTES = 16 * MiB
BUCKET = "bench-data"
LARGE_BUCKET = "bench-large"
LARGE_SINGLE_BUCKET = "bench-large-single"
LARGE_REF_BUCKET = "bench-large-ref"
LIST_SMALL_BUCKET = "bench-list-10k"
LIST_BIG_BUCKET = "bench-list-big"
#: the script the emulated daemon's jobs run in (``--_fd-job``)
ENTRY = os.path.join(HERE, "bench.py")


def log(text):
    print(text, flush=True)


def fmt_mib(n):
    return "%.0f MiB" % (n / MiB)


def parse_size_text(text):
    text = text.strip().upper()
    mult = {"K": 1024, "M": MiB, "G": GiB}.get(text[-1:], 1)
    return int(float(text.rstrip("KMG")) * mult)


#: Options of the no-change incrementals (d, r, l): no incremental_margin.  The margin (1 h by
#: default) saves again what changed shortly before the last backup, for the clock skew between
#: an object store and the director; the benchmark's data was written seconds before its Full, on
#: the same clock, so with the margin an "unchanged" incremental would save every object.
NO_MARGIN = {"incremental_margin": "0"}
