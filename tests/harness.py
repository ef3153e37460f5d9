"""Helpers shared by the plugin's end-to-end tests and the demo (no pytest import)."""

import os

from bareos_libcloud import naming

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 1024 * 1024


def plugin_string(server, via=None, **options):
    """The FileSet ``Plugin =`` string for ``server`` plus extra plugin options.

    ``via``: a FaultProxy in front of the server; the plugin then talks to the proxy.
    """
    backend = server.plugin_options()
    if via is not None:
        backend = backend.replace(":port=%d:" % server.port, ":port=%d:" % via.port)
    text = "python3:module_path=%s:module_name=bareos-fd-libcloud:%s" % (REPO, backend)
    for key, value in options.items():
        text += ":%s=%s" % (key, value)
    return text


def bucket_objects(server, bucket):
    """``{key: bytes}`` of everything in ``bucket``, read with boto3 (not the plugin)."""
    client = server.boto3_client()
    out = {}
    for key in server.list_keys(bucket):
        out[key] = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return out


def bucket_mtimes(server, bucket):
    """``{key: Last-Modified epoch}`` from a boto3 listing."""
    client = server.boto3_client()
    out = {}
    for page in client.get_paginator("list_objects").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            out[item["Key"]] = int(item["LastModified"].timestamp())
    return out


def _fname_of(relative):
    """The backup name of a restored file's path relative to ``where``."""
    if relative.endswith(naming.OBJECT_SUFFIX):
        relative = relative[: -len(naming.OBJECT_SUFFIX)]
        if relative.endswith("%/"):  # the suffix was a piece of its own
            relative = relative[:-2]
        elif relative.endswith("/"):
            relative = relative[:-1]
    return "/" + relative


def restored_objects(where, bucket=None):
    """``{(bucket, key): bytes}`` of the objects restored below ``where``."""
    out = {}
    top = os.path.join(where, naming.PREFIX.strip("/"))
    for root, dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, where)
            got_bucket, key = naming.parse_fname(_fname_of(relative))
            if bucket is None or got_bucket == bucket:
                with open(path, "rb") as handle:
                    out[(got_bucket, key)] = handle.read()
    return out


def restored_keys(where, bucket):
    """``{key: bytes}`` restored for one bucket."""
    return {key: data for (b, key), data in restored_objects(where, bucket).items()}


def all_files_under(directory):
    """Every file path below ``directory`` (to prove nothing was written elsewhere)."""
    found = []
    for root, dirs, files in os.walk(directory):
        found.extend(os.path.join(root, name) for name in files)
    return found
