"""bareos-libcloud: back up the contents of object-storage buckets into Bareos.

The job's own interpreter (inside bareos-fd) runs ``job/``, the helper processes run ``helper/``
(libcloud is used there only), ``protocol.py`` describes the messages between them, the modules at
the top are shared by both sides and the command (``cli/``); see docs/design.md, "Layout".
"""

__version__ = "0.1.0"
