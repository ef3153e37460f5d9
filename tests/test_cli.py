"""The ``bareos-libcloud`` command (bareos_libcloud/cli/), run for real in a subprocess against
the local servers: what it says of a plugin string is what the job does with it."""

import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time

import pytest

from fdemu import FileDaemon
from harness import REPO, plugin_string

from bareos_libcloud import naming
from bareos_libcloud.options import DEFAULT_PREFETCH_SIZE

MiB = 1 << 20


def cli(*args, stderr=subprocess.PIPE, timeout=300):
    """Run ``python -m bareos_libcloud ARGS``; returns the CompletedProcess (text)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "bareos_libcloud"] + [str(a) for a in args], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=timeout)


def output(done):
    return done.stdout + (done.stderr or "")


def no_secret(done, *servers):
    text = output(done)
    for server in servers:
        assert server.secret not in text and server.key not in text, text


@pytest.fixture
def creds(tmp_path):
    """``creds(server)``: a credentials_file (mode 600) with the server's key and secret."""

    def write(server, name="s3.cred", secret=None):
        path = tmp_path / name
        path.write_text("# keys\nkey=%s\nsecret=%s\n" % (server.key, secret or server.secret))
        path.chmod(0o600)
        return str(path)

    return write


def fileset_string(server, cred, **options):
    """The FileSet's string with the keys in a credentials_file, as README tells."""
    text = "python3:module_path=%s:module_name=bareos-fd-libcloud:provider=%s:host=%s:port=%d:secure=false" % (
        REPO, server.provider, server.host, server.port)
    if getattr(server, "region", None):
        text += ":region=%s" % server.region
    text += ":credentials_file=%s" % cred
    for key, value in options.items():
        text += ":%s=%s" % (key, value)
    return text


def fnames(text):
    """The Bareos names of ``ls`` output lines (size, date, time, zone, name)."""
    return {line.split(None, 4)[4] for line in text.splitlines() if line.strip()}


# -- check -------------------------------------------------------------------------------------------
def test_check_confirms_a_working_line(s3, creds, bucket_name):
    s3.make_bucket(bucket_name, {"a/1": b"one", "a/2": b"two"})
    done = cli("check", fileset_string(s3, creds(s3), buckets_include=bucket_name))
    assert done.returncode == 0, output(done)
    lines = done.stdout.splitlines()
    assert "ok: connected, credentials accepted" in lines
    assert "ok: 1 bucket selected: %s" % bucket_name in lines
    assert "ok: objects found: bucket %r can be listed" % bucket_name in lines
    assert all(line.startswith("ok: ") for line in lines), lines
    no_secret(done, s3)


def test_check_refused_credentials_are_one_error_without_the_secret(rgw, bucket_name):
    rgw.make_bucket(bucket_name, {"k": b"v"})
    wrong = "Wr0ngSecretThatMustNotBeShown"
    text = plugin_string(rgw, buckets_include=bucket_name).replace(rgw.secret, wrong)
    done = cli("check", text)
    assert done.returncode == 1, output(done)
    errors = [line for line in done.stdout.splitlines() if line.startswith("error: ")]
    assert errors == ["error: the object store at %s:%d refused the credentials (check key and secret; a "
                      "requester-pays bucket of another account needs request_payer=yes)"
                      % (rgw.host, rgw.port)], output(done)
    assert wrong not in output(done)
    no_secret(done, rgw)


def test_check_names_the_bucket_that_does_not_exist(moto, creds, bucket_name):
    moto.make_bucket(bucket_name, {"k": b"v"})
    missing = bucket_name + "-missing"
    done = cli("check", fileset_string(moto, creds(moto), buckets_include="%s,%s" % (bucket_name, missing)))
    assert done.returncode == 1, output(done)
    assert ("error: bucket %r named in buckets_include does not exist; nothing of it is saved" % missing
            in done.stdout.splitlines())
    assert "ok: 1 bucket selected: %s" % bucket_name in done.stdout.splitlines()


def test_check_says_when_the_line_selects_nothing(moto, creds, bucket_name):
    moto.make_bucket(bucket_name, {"photos/a": b"v"})
    done = cli("check", fileset_string(moto, creds(moto), buckets_include=bucket_name, prefix="/photos/"))
    assert done.returncode == 1, output(done)
    assert [line for line in done.stdout.splitlines() if line.startswith("error")] == [
        "error: the line selects no object at all: a backup would hold nothing of it; check buckets_include, "
        "buckets_exclude and prefix (keys rarely begin with '/')"]


@pytest.mark.parametrize("extra, message", [
    ("bucket_include=x", "bad options: unknown option bucket_include (did you mean buckets_include?)"),
    ("nb_prefetcher=0", "bad options: option nb_prefetcher=0 is too small (minimum 1)"),
    ("hots=127.0.0.1", "bad options: unknown option hots (did you mean host?)"),  # the driver's check
    ("provider=S4", None),  # the first provider wins, as in the job: this is a warning
])
def test_check_bad_options_exit_2_with_the_jobs_message(moto, creds, extra, message):
    done = cli("check", fileset_string(moto, creds(moto)) + ":" + extra)
    if message is None:
        assert done.returncode == 1, output(done)
        assert "warning: option provider given twice; the first value is used ('S3_RGW' kept)" in done.stdout
        return
    assert done.returncode == 2, output(done)
    assert done.stdout.splitlines()[-1] == message
    no_secret(done, moto)


def test_check_warns_of_a_credentials_file_everyone_can_read(moto, creds, bucket_name):
    moto.make_bucket(bucket_name, {"k": b"v"})
    path = creds(moto)
    os.chmod(path, 0o644)
    done = cli("check", fileset_string(moto, path, buckets_include=bucket_name))
    assert done.returncode == 1, output(done)
    assert "warning: credentials_file %r is readable by everyone; chmod 600 it" % path in done.stdout.splitlines()


def test_usage_errors_exit_2(moto, creds, tmp_path):
    assert cli("check").returncode == 2
    both = cli("check", "--file", creds(moto), "provider=S3")
    assert both.returncode == 2 and "not both" in both.stdout
    assert cli("size", "--since", "yesterday-ish", "provider=S3:key=k").returncode == 2
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    assert cli("check", "--file", empty).returncode == 2


def test_secrets_in_the_string_are_never_printed(moto, bucket_name):
    """Keys given in the plugin string (against the README's advice) are masked everywhere."""
    moto.make_bucket(bucket_name, {"k": b"v"})
    text = plugin_string(moto, buckets_include=bucket_name + "-missing")
    missing = "bucket %r named in buckets_include does not exist" % (bucket_name + "-missing")
    for args, status, said in ((["check", text], 1, missing), (["size", text], 1, missing),
                               (["plan", "--sample", "0", text], 1, missing),
                               (["check", text + ":oops"], 2, "bad options: plugin option number 9 is not key=value")):
        done = cli(*args)
        assert done.returncode == status and said in output(done), output(done)
        no_secret(done, moto)


# -- --file, several lines ---------------------------------------------------------------------------------
def test_file_with_the_filesets_plugin_statements(moto, creds, bucket_name, tmp_path):
    """A copy of the FileSet: each Plugin = statement is one line, its quoted pieces joined and
    unescaped as the director does (``\\\\:`` is a ``:`` inside a value)."""
    moto.make_bucket(bucket_name, {"a:b/1": b"x" * 10, "a:b/2": b"y" * 20, "a/3": b"z"})
    cred = creds(moto)
    fileset = tmp_path / "fileset.conf"
    fileset.write_text(
        'FileSet {\n  Name = "s3"\n  Include {\n    Options { Signature = MD5 }\n'
        '    Plugin = "python3"\n'
        '             ":module_name=bareos-fd-libcloud"\n'
        '             ":provider=%s:host=%s:port=%d:secure=false:region=%s"\n'
        '             ":credentials_file=%s"\n'
        '             ":buckets_include=%s:prefix=a\\\\:b/"\n'
        '  }\n}\n' % (moto.provider, moto.host, moto.port, moto.region, cred, bucket_name))
    done = cli("size", "--file", fileset)
    assert done.returncode == 0, output(done)
    assert "  %s: 2 objects, 30 B (30 bytes)" % bucket_name in done.stdout.splitlines()

    # Two lines that select the same objects: the job refuses them at its start, so does check.
    fileset.write_text(fileset.read_text().replace("  }\n}", '    Plugin = "python3:module_name=bareos-fd-libcloud'
                                                   ':provider=%s:host=%s:port=%d:secure=false:region=%s'
                                                   ':credentials_file=%s:buckets_include=%s"\n  }\n}'
                                                   % (moto.provider, moto.host, moto.port, moto.region, cred,
                                                      bucket_name)))
    done = cli("check", "--file", fileset)
    assert done.returncode == 1, output(done)
    assert re.search(r"^error: Plugin line 1 \(buckets %s, prefix 'a:b/'\) and Plugin line 2 \(buckets %s\) both "
                     r"select objects of bucket '%s'" % (bucket_name, bucket_name, bucket_name), done.stdout, re.M), \
        done.stdout


# -- size, ls: what the job saves ----------------------------------------------------------------------
def test_size_and_ls_are_what_a_full_saves(moto, creds, bucket_name, tmp_path):
    objects = {"2024/%03d.jpg" % i: os.urandom(i * 37) for i in range(120)}
    objects.update({"a//b": b"double", "dots/../x": b"dots", "ü/日本": b"unicode", "empty": b""})
    moto.make_bucket(bucket_name, objects)
    other = bucket_name[:50] + "-other"
    moto.make_bucket(other, {"not/selected": b"x"})
    text = fileset_string(moto, creds(moto), buckets_include=bucket_name, shard="1/2")

    fd = FileDaemon(str(tmp_path / "fd"))
    job = fd.backup(plugin_string(moto, buckets_include=bucket_name, shard="1/2", nb_prefetcher=2))
    assert job.status == "T", job.messages
    saved = {r.fname: r.size for r in job.files if r.cataloged}
    assert 0 < len(saved) < len(objects)  # the shard takes part of them

    size = cli("size", text)
    assert size.returncode == 0, output(size)
    assert "  %s: %d objects, " % (bucket_name, len(saved)) in size.stdout
    assert "(%d bytes)" % sum(saved.values()) in size.stdout.splitlines()[1]

    ls = cli("ls", text)
    assert ls.returncode == 0, output(ls)
    assert fnames(ls.stdout) == set(saved)
    for line in ls.stdout.splitlines():
        assert int(line.split()[0]) == saved[line.split(None, 4)[4]]


def test_since_is_what_an_incremental_saves(moto, creds, bucket_name, tmp_path):
    moto.make_bucket(bucket_name, {"old/%d" % i: b"o" * i for i in range(5)})
    fd = FileDaemon(str(tmp_path / "fd"))
    plugin = plugin_string(moto, buckets_include=bucket_name, nb_prefetcher=2)
    assert fd.backup(plugin).status == "T"
    time.sleep(2.1)  # Last-Modified has one-second resolution
    since = int(time.time())
    client = moto.boto3_client()
    for i in range(3):
        client.put_object(Bucket=bucket_name, Key="new/%d" % i, Body=b"n" * (i + 1))
    text = fileset_string(moto, creds(moto), buckets_include=bucket_name)

    for margin in ("0", None):  # None: the default hour, which takes the old objects too
        extra = ":incremental_margin=%s" % margin if margin else ""
        job = fd.backup(plugin + extra, level="I", since=since)
        assert job.status == "T", job.messages
        saved = {r.fname for r in job.files if r.cataloged}
        assert len(saved) == (3 if margin else 8)
        ls = cli("ls", "--since", "@%d" % since, text + extra)
        assert ls.returncode == 0, output(ls)
        assert fnames(ls.stdout) == saved
        size = cli("size", "--since", "@%d" % since, text + extra)
        assert "  %s: %d objects, " % (bucket_name, len(saved)) in size.stdout, size.stdout
        assert "; %d of 8 objects unchanged" % (8 - len(saved)) in size.stdout

    # Accurate mode applies no margin: the catalog comparison decides.
    accurate = cli("ls", "--since", "@%d" % since, "--accurate", text)
    assert fnames(accurate.stdout) == {naming.object_fname(bucket_name, "new/%d" % i) for i in range(3)}


def test_progress_goes_to_stderr_on_a_terminal_only(moto, creds, bucket_name):
    moto.make_bucket(bucket_name, {"k%d" % i: b"v" for i in range(3)})
    text = fileset_string(moto, creds(moto), buckets_include=bucket_name)
    plain = cli("size", text)
    assert plain.returncode == 0 and plain.stderr == ""
    master, slave = pty.openpty()
    try:
        done = cli("size", text, stderr=slave)
        os.close(slave)
        seen = b""
        while select.select([master], [], [], 1)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal's other end is closed
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert done.returncode == 0
    assert "listing %s: 3 objects" % bucket_name in seen.decode()
    assert seen.endswith(b"\r\x1b[K")  # the progress line is wiped before the figures
    assert "listing" not in done.stdout


# -- plan ---------------------------------------------------------------------------------------------
def test_plan_says_memory_helpers_and_a_measured_duration(moto, creds, bucket_name):
    objects = {"small/%d" % i: b"s" * 1000 for i in range(30)}
    objects["large"] = b"L" * (DEFAULT_PREFETCH_SIZE + 1)  # streamed: the signer starts
    moto.make_bucket(bucket_name, objects)
    text = fileset_string(moto, creds(moto), buckets_include=bucket_name, nb_prefetcher=3, prefetch_memory="64M")
    done = cli("plan", text)
    assert done.returncode == 0, output(done)
    lines = done.stdout.splitlines()
    # fork server 37 + resource tracker 13 + lister 36 + one fetch helper 33 (3 transfers) + signer 30,
    # and the objects: prefetch_memory + one object under prefetch_size + 256 KiB a transfer
    processes = 37 + 13 + 36 + 33 + 30
    objects_bytes = 64 * MiB + DEFAULT_PREFETCH_SIZE + 3 * 256 * 1024
    assert lines[1] == "memory at the job's peak: about %.0f MiB" % (processes + objects_bytes / MiB)
    assert any(re.match(r"\s+fetch helpers \(libcloud-fetch\)\s+1 x 33 MiB = +33 MiB$", line) for line in lines)
    assert any(re.match(r"\s+signer \(libcloud-sign\)\s+1 x 30 MiB", line) for line in lines)
    assert "the job: 31 objects to save, 10.0 MiB (31 objects listed in" in done.stdout
    assert "  30 prefetched, up to 3 at a time, 1 streamed (prefetch_size 10.0 MiB or more)" in lines
    duration = [line for line in lines if line.startswith("  rough duration: ")]
    assert len(duration) == 1 and re.search(r"from (\d+) sample GETs .* a stream$", duration[0]), lines
    assert int(re.search(r"from (\d+) sample GETs", duration[0]).group(1)) <= 20

    unsampled = cli("plan", "--sample", "0", fileset_string(moto, creds(moto), buckets_include=bucket_name,
                                                            prefix="small/"))
    assert unsampled.returncode == 0, output(unsampled)
    assert "  rough duration: not measured (--sample 0)" in unsampled.stdout.splitlines()
    assert "signer" not in unsampled.stdout  # no object large enough: no signer starts


# -- the installed command ---------------------------------------------------------------------------------
def test_the_console_script_and_the_entrypoint_of_a_built_wheel(moto, creds, bucket_name, tmp_path):
    """pyproject.toml: the wheel holds the ``bareos-libcloud`` command and the entrypoint that
    docs/install.md copies from <prefix>/share/bareos-libcloud/."""
    wheels, target, source = tmp_path / "wheels", tmp_path / "target", tmp_path / "source"
    # A copy of what the package is made of, so that the build leaves nothing in the checkout.
    shutil.copytree(os.path.join(REPO, "bareos_libcloud"), source / "bareos_libcloud",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "bareos-fd-libcloud.py"):
        shutil.copy(os.path.join(REPO, name), source / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(source)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.iterdir()
    # Every module of the package is in the wheel (the test process would import a missing one
    # from the checkout, so the command's run below cannot tell).
    import zipfile

    package = os.path.join(REPO, "bareos_libcloud")
    modules = {os.path.relpath(os.path.join(root, name), REPO) for root, _, names in os.walk(package)
               for name in names if name.endswith(".py")}
    assert modules - set(zipfile.ZipFile(wheel).namelist()) == set()
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                              "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr
    with open(os.path.join(REPO, "bareos-fd-libcloud.py"), "rb") as mine:
        assert (target / "share" / "bareos-libcloud" / "bareos-fd-libcloud.py").read_bytes() == mine.read()

    moto.make_bucket(bucket_name, {"k": b"v"})
    env = dict(os.environ, PYTHONPATH=str(target))
    done = subprocess.run([str(target / "bin" / "bareos-libcloud"), "check",
                           fileset_string(moto, creds(moto), buckets_include=bucket_name)],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok: 1 bucket selected: %s" % bucket_name in done.stdout.splitlines()


# -- restore-check -----------------------------------------------------------------------------------
@pytest.mark.parametrize("signature", ["2", "4"])
def test_restore_check_probes_the_target_without_leaving_anything(rgw, creds, bucket_name, signature):
    """radosgw checks every signature: the probe (a multipart upload started and aborted) is
    signed right with SigV2 and SigV4, and leaves neither an object nor a pending upload."""
    rgw.make_bucket(bucket_name, {"k": b"v"})
    target = bucket_name[:50] + "-to"
    rgw.make_bucket(target)
    done = cli("restore-check", fileset_string(rgw, creds(rgw), buckets_include=bucket_name),
               "--restore-options", "python3:restore_to=bucket:restore_bucket=%s:signature_version=%s"
               % (target, signature))
    assert done.returncode == 0, output(done)
    assert "ok: bucket %r can be restored into: a multipart upload was started and aborted (no object)" % target \
        in done.stdout.splitlines(), output(done)
    assert rgw.list_keys(target) == []
    assert rgw.boto3_client().list_multipart_uploads(Bucket=target).get("Uploads", []) == []
    no_secret(done, rgw)


def test_restore_check_names_a_target_that_may_not_be_written(moto, proxy, creds, bucket_name):
    moto.make_bucket(bucket_name, {"k": b"v"})
    proxy.respond(403, times=None, method="POST", match="uploads")
    done = cli("restore-check", fileset_string(moto, creds(moto), buckets_include=bucket_name),
               "--restore-options", "restore_to=bucket:port=%d" % proxy.port)
    assert done.returncode == 1, output(done)
    errors = [line for line in done.stdout.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "may not write into bucket %r" % bucket_name in errors[0], output(done)


def test_restore_check_warns_of_a_bucket_the_restore_would_create(moto, creds, bucket_name):
    moto.make_bucket(bucket_name, {"k": b"v"})
    done = cli("restore-check", fileset_string(moto, creds(moto), buckets_include=bucket_name),
               "--restore-options", "restore_to=bucket:restore_bucket=%s-new" % bucket_name)
    assert done.returncode == 1, output(done)
    assert "does not exist: the restore creates it" in done.stdout, output(done)


def test_restore_check_into_another_provider(moto, azurite, creds, bucket_name):
    """provider= in the restore's options: the target's credentials and driver, not the backup's."""
    moto.make_bucket(bucket_name, {"k": b"v"})
    azurite.make_bucket(bucket_name)
    cred = creds(azurite, name="azure.cred")
    done = cli("restore-check", fileset_string(moto, creds(moto), buckets_include=bucket_name),
               "--restore-options", "restore_to=bucket:provider=AZURE_BLOBS:host=%s:port=%d:secure=false:"
               "credentials_file=%s" % (azurite.host, azurite.port, cred))
    assert done.returncode == 0, output(done)
    assert "a block was put and not committed (no blob)" in done.stdout, output(done)
    assert azurite.objects(bucket_name) == {}
    no_secret(done, moto, azurite)


def test_restore_check_into_swift_leaves_no_object(moto, swift, creds, bucket_name):
    """Outside the S3 family and Azure the probe is an empty object, uploaded and deleted again."""
    moto.make_bucket(bucket_name, {"k": b"v"})
    swift.make_bucket(bucket_name)
    done = cli("restore-check", fileset_string(moto, creds(moto), buckets_include=bucket_name),
               "--restore-options", "restore_to=bucket:" + swift.plugin_options())
    assert done.returncode == 0, output(done)
    assert "an empty object '.bareos-libcloud-restore-check' was uploaded and deleted" in done.stdout, output(done)
    assert swift.list_keys(bucket_name) == []
    no_secret(done, moto, swift)
