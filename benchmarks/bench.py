#!/usr/bin/env python3
"""Entry point of the benchmark: the code is the package ``benchmarks/bench/`` (its docstring says what
each measurement is and how to run them); ``python -m benchmarks.bench`` is the same."""

import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench.cli import main  # the package benchmarks/bench/, not this file

    sys.exit(main())
