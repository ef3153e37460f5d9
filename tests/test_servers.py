"""The local S3 servers of tests/servers.py work for fixtures (boto3) and for libcloud."""

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import psutil
import pytest
from libcloud.storage.providers import Provider, get_driver

# Keys that libcloud mangles on write (its URL joining collapses `//` and a leading `/`, and
# requests drops `.` and `..` path segments) but boto3 keeps.
ODD_KEYS = ["a//b", "/lead", "a/../b", "a/./c", ".", "..", "sp ace", "\u00fc", "dirmarker/",
            "percent%20literal", "plus+sign", "q&x=1;y", "tab\there", "new\nline"]


def libcloud_driver(server):
    """Exactly how the plugin builds its driver from the option string's values."""
    cls = get_driver(getattr(Provider, server.provider))
    return cls(server.key, server.secret, host=server.host, port=server.port, secure=False,
               region=server.region)


def odd_keys_for(server):
    if type(server).__name__ == "MotoServer":
        # moto's URL routing (regex `.+`) does not match a newline: PUT gives 404.
        return [k for k in ODD_KEYS if "\n" not in k]
    return list(ODD_KEYS)


def test_libcloud_lists_and_downloads(s3, bucket_name):
    objects = {"dir/obj-%03d" % i: hashlib.sha256(b"%d" % i).digest() * (i + 1)
               for i in range(30)}
    objects["big"] = bytes(range(256)) * 4096 * 3  # 3 MiB
    s3.make_bucket(bucket_name, objects)

    driver = libcloud_driver(s3)
    container = driver.get_container(bucket_name)
    listed = {o.name: o.size for o in driver.iterate_container_objects(container)}
    assert listed == {k: len(v) for k, v in objects.items()}

    obj = driver.get_object(bucket_name, "big")
    assert b"".join(driver.download_object_as_stream(obj)) == objects["big"]
    obj = driver.get_object(bucket_name, "dir/obj-007")
    assert b"".join(driver.download_object_as_stream(obj)) == objects["dir/obj-007"]


def test_boto3_keeps_odd_keys_exactly(s3, bucket_name):
    keys = odd_keys_for(s3)
    objects = {k: ("<%s>" % k).encode() for k in keys}
    s3.make_bucket(bucket_name, objects)

    assert sorted(s3.list_keys(bucket_name)) == sorted(keys)
    client = s3.boto3_client()
    for k, v in objects.items():
        assert client.get_object(Bucket=bucket_name, Key=k)["Body"].read() == v, repr(k)
    # libcloud lists them exactly too (only its downloads of some of them go wrong)
    driver = libcloud_driver(s3)
    listed = [o.name for o in driver.iterate_container_objects(driver.get_container(bucket_name))]
    assert sorted(listed) == sorted(keys)


def test_moto_cannot_store_newline_keys(moto, bucket_name):
    """Documents a moto limit: keys containing '\\n' need the radosgw suite."""
    from botocore.exceptions import ClientError

    moto.make_bucket(bucket_name)
    with pytest.raises(ClientError):
        moto.boto3_client().put_object(Bucket=bucket_name, Key="new\nline", Body=b"x")


def test_make_bucket_many_objects_threaded(s3, bucket_name):
    objects = {"p%02d/o%04d" % (i % 7, i): b"%06d" % i for i in range(300)}
    s3.make_bucket(bucket_name, objects)
    assert sorted(s3.list_keys(bucket_name)) == sorted(objects)


def test_libcloud_create_container(s3, bucket_name):
    driver = libcloud_driver(s3)
    driver.create_container(bucket_name)
    assert bucket_name in [c.name for c in driver.iterate_containers()]


def test_plugin_options(s3):
    opts = s3.plugin_options()
    assert not opts.startswith(":") and not opts.endswith(":")
    parsed = dict(item.split("=", 1) for item in opts.split(":"))
    assert parsed == {"provider": s3.provider, "key": s3.key, "secret": s3.secret,
                      "host": "127.0.0.1", "port": str(s3.port), "secure": "false",
                      "region": s3.region}
    assert hasattr(Provider, parsed["provider"])


def test_rgw_checks_signatures(rgw, bucket_name):
    from libcloud.common.types import InvalidCredsError

    rgw.make_bucket(bucket_name, {"k": b"v"})
    cls = get_driver(getattr(Provider, rgw.provider))
    bad = cls(rgw.key, rgw.secret + "x", host=rgw.host, port=rgw.port, secure=False,
              region=rgw.region)
    with pytest.raises(InvalidCredsError):
        list(bad.iterate_container_objects(bad.get_container(bucket_name)))


HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS_PY = os.path.join(HERE, "servers.py")


def processes_naming(text):
    """Processes whose command line contains ``text``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if text in " ".join(proc.info["cmdline"] or ()):
            found.append(proc)
    return found


def test_rgw_starts_from_the_repository_alone(rgw, tmp_path):
    """tests/ copied where nothing is beside it starts its own Ceph, serves S3 with its random
    keys and leaves no daemon behind."""
    copy = tmp_path / "clone" / "tests"
    shutil.copytree(HERE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    script = """if True:
        import json, sys
        sys.path.insert(0, sys.argv[1])
        from servers import RadosGW
        srv = RadosGW().start()
        srv.make_bucket("bkt", {"k": b"value"})
        body = srv.boto3_client().get_object(Bucket="bkt", Key="k")["Body"].read()
        pids, ceph_dir = srv.cluster.pids(), srv.ceph_dir
        srv.stop()
        print(json.dumps({"body": body.decode(), "pids": pids, "ceph_dir": ceph_dir}))
    """
    run = subprocess.run([sys.executable, "-c", script, str(copy)], cwd=str(tmp_path),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:]
    out = json.loads(run.stdout.splitlines()[-1])
    assert out["body"] == "value"
    assert sorted(out["pids"]) == ["client.rgw.x", "mon.a", "osd.0"]
    assert not [pid for pid in out["pids"].values() if psutil.pid_exists(pid)]
    assert not processes_naming(out["ceph_dir"])
    assert not os.path.exists(out["ceph_dir"])


def test_ceph_start_that_fails_stops_what_it_started(rgw, tmp_path):
    """radosgw finding its port taken ends the start with the reason and the log's last lines,
    marked as a port clash (RadosGW then retries on other ports), and nothing keeps running."""
    import miniceph
    from servers import _free_port_block

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cluster = miniceph.MiniCeph(str(tmp_path / "ceph"), _free_port_block(100), taken.getsockname()[1])
        with pytest.raises(miniceph.CephError) as failed:
            cluster.start(timeout=120)
    assert failed.value.port_clash
    assert "client.rgw.x exited with 98 (address already in use)" in str(failed.value)
    assert cluster.procs == {} and cluster.pids() == {}
    assert not processes_naming(str(tmp_path / "ceph"))


def test_servers_py_rejects_an_unknown_server():
    proc = subprocess.Popen([sys.executable, SERVERS_PY, "nosuch"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # with whatever server it started instead
        proc.communicate()
        pytest.fail("servers.py nosuch did not exit")
    assert (proc.returncode, out) == (2, "")
    assert err.startswith("usage:") and "moto|rgw|azurite" in err


def test_servers_py_azurite_starts_azurite_not_moto(azurite):
    proc = subprocess.Popen([sys.executable, SERVERS_PY, "azurite"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        kids = psutil.Process(proc.pid).children(recursive=True)
        children = [" ".join(c.cmdline()) for c in kids]
    finally:
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=30)[0]
    started = lines[0].split(" up in ")[0]
    provider = re.search(r"provider=(\w+)", lines[1])
    assert started == "Azurite"
    assert provider and provider.group(1) == "AZURE_BLOBS"
    assert not [c for c in children if "moto" in c]
    assert [c for c in children if "azurite" in c]
    assert proc.returncode == 0 and "Traceback" not in rest
    assert psutil.wait_procs(kids, timeout=10)[1] == []  # Ctrl-C stopped the server, too
