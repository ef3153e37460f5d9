"""The main job on an embedded default: `python3 run.py demo`.

Starts a local S3 server (moto) on 127.0.0.1, fills a sample bucket, checks the plugin string
with the ``bareos-libcloud`` command, runs a Full backup, changes the bucket, runs an accurate
Incremental, restores the newest state and compares every restored byte with the bucket, all
through the emulated bareos-fd (tests/fdemu). Exits non-zero if anything differs.
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))

from fdemu import FileDaemon  # noqa: E402
from harness import REPO, MiB, bucket_objects, restored_keys  # noqa: E402
from servers import MotoServer  # noqa: E402

BUCKET = "demo-photos"


def sample_objects(count, seed=7):
    """A bucket's worth of objects: many small ones, a few large, some awkward names."""
    rnd = random.Random(seed)
    objects = {}
    for i in range(count):
        size = min(int(rnd.lognormvariate(7.5, 1.6)), 4 * MiB)
        objects["%04d/%02d/img-%05d.jpg" % (2020 + i % 5, 1 + i % 12, i)] = rnd.randbytes(size)
    objects["video/holiday.mp4"] = rnd.randbytes(24 * MiB + 123)
    objects.update({
        "notes/ü-日本-🚀.txt": "unicode name".encode(),
        "with space/and+plus.txt": b"spaces",
        "folder-marker/": b"",
        "a//double": b"double slash",
        "dots/../escape": b"must stay inside the restore target",
        "empty": b"",
    })
    return objects


#: What a default Bareos Messages resource shows (``all, !skipped, !saved``).
SHOWN = {1, 3, 4, 5, 6}


def show(title, result):
    print("\n== %s: JobId %s, status %s" % (title, result.jobid, result.status))
    for kind, text in result.messages:
        if kind in SHOWN:
            print("   " + text.rstrip("\n"))
    for name in result.deleted:
        print("   catalog: recorded as deleted: %s" % name)


def command(argv):
    """Run ``python3 -m bareos_libcloud ARGV`` (the ``bareos-libcloud`` command) and show its output."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "bareos_libcloud"] + argv, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    for line in done.stdout.splitlines():
        print("   " + line)
    print("   (exit status %d)" % done.returncode)
    return done.returncode


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=400, help="small objects in the sample bucket")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)

    work = tempfile.mkdtemp(prefix="bareos-libcloud-demo-")
    where = os.path.join(work, "bareos-restores")
    ok = False
    try:
        with MotoServer() as s3:
            print("S3 server (moto) at %s" % s3.endpoint_url)
            objects = sample_objects(args.objects)
            s3.make_bucket(BUCKET, objects)
            print("bucket %r: %d objects, %.1f MiB" % (BUCKET, len(objects), sum(map(len, objects.values())) / MiB))
            time.sleep(1.1)  # Last-Modified has one-second resolution

            fd = FileDaemon(os.path.join(work, "fd"))
            credentials = os.path.join(work, "libcloud-demo.cred")
            with open(os.open(credentials, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
                handle.write("key=%s\nsecret=%s\n" % (s3.key, s3.secret))
            plugin = ("python3:module_path=%s:module_name=bareos-fd-libcloud"
                      ":provider=%s:host=%s:port=%d:secure=false:region=%s"
                      ":credentials_file=%s:buckets_include=%s:nb_prefetcher=4"
                      % (REPO, s3.provider, s3.host, s3.port, s3.region, credentials, BUCKET))
            print("\nThe FileSet's plugin string (the keys are in the credentials file, mode 600, never in the string):")
            print('   Plugin = "%s"' % plugin)
            print("\n== bareos-libcloud check (what an operator runs before the first job)")
            command(["check", plugin])
            print("\n== bareos-libcloud size")
            command(["size", plugin])
            show("Full backup", fd.backup(plugin, accurate=True))

            client = s3.boto3_client()
            client.put_object(Bucket=BUCKET, Key="notes/new.txt", Body=b"added after the full")
            client.put_object(Bucket=BUCKET, Key="with space/and+plus.txt", Body=b"changed")
            client.delete_object(Bucket=BUCKET, Key="empty")
            print("\nchanged the bucket: 1 added, 1 changed, 1 deleted")
            show("Incremental backup (accurate)", fd.backup(plugin, level="I", accurate=True))

            show("Restore of the newest state to %s" % where, fd.restore(where=where))

            expected = bucket_objects(s3, BUCKET)
            restored = restored_keys(where, BUCKET)
            missing = sorted(set(expected) - set(restored))
            extra = sorted(set(restored) - set(expected))
            wrong = sorted(k for k in expected if k in restored and restored[k] != expected[k])
            print("\n== Comparison with the bucket")
            print("   %d objects in the bucket, %d restored, %d missing, %d extra, %d with other bytes"
                  % (len(expected), len(restored), len(missing), len(extra), len(wrong)))
            for key in missing + extra + wrong:
                print("   differs: %r" % key)
            ok = not (missing or extra or wrong)
            print("   %s" % ("OK: the restore equals the bucket, byte for byte" if ok else "FAILED"))
    finally:
        print()
        if args.keep:
            print("Kept (--keep): the restored objects in %s" % os.path.join(where, "@libcloud", BUCKET))
            print("               the emulated daemon's catalog and volumes in %s" % os.path.join(work, "fd"))
        else:
            shutil.rmtree(work, ignore_errors=True)
            print("The work directory is removed; with --keep the restored objects stay for a look.")
    print("Next: install the plugin into Bareos, see README.md, section \"Installing into Bareos\" "
          "(and docs/install.md).")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
