"""``python3 -m bareos_libcloud``: the ``bareos-libcloud`` command (cli/)."""

import sys

from .cli import main

sys.exit(main())
