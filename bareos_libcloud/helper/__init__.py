"""The helper side: the modules that run in the job's helper processes, outside bareos-fd.

The lister, the fetch helpers and the signer are forked by multiprocessing's fork server
(job/helpers.py), a fresh interpreter of their own; they talk to the job over one pipe each
(bareos_libcloud.protocol describes the messages).  Here libcloud, requests, pycurl, compiled
wheels and threads are fine.  The job side never imports this package; the helpers import the
shared top-level modules of ``bareos_libcloud`` as the job does.
"""
