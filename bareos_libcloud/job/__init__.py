"""The job side: the modules that run inside bareos-fd, in the job's own Python sub-interpreter.

bareos-fd imports the plugin afresh for every job (``bareos-fd-libcloud.py`` -> ``job.plugin``)
and calls it on the job's thread.  Compiled wheels fail there from the second job on, ``fork``
kills the children, and a thread alive at the job's end aborts the daemon (docs/design.md,
"Where the code runs").  So these modules import the standard library and the shared top-level
modules of ``bareos_libcloud`` only (options, selection, shards, retry, timeutil, naming,
archive, journal, answers, protocol), never libcloud, requests, pycurl or any third-party
module, also not on an error path, and never ``bareos_libcloud.helper``: the helpers' entry
points are named through ``bareos_libcloud.protocol``, which imports the helper side only in the
helper process (tests/test_in_daemon_imports.py checks all this).
"""
