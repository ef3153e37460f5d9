"""bareos-libcloud: back up the contents of object-storage buckets into Bareos.

The job's own interpreter (inside bareos-fd) imports only plugin-side modules; libcloud is used
in helper processes only (see docs/design.md).
"""

__version__ = "0.1.0"
