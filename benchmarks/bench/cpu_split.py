"""Where the CPU goes per object, from ``py-spy record --gil --subprocesses`` (collapsed stacks): each
sample is put in one category by its process kind and its frames, then shown as ms per object."""

import collections

from .pyspy import _pyspy_kind, read_stacks

#: (process kind prefix, category, test on the stack text); the first match wins
_RULES = [
    ("job", "job thread: plugin start-up (imports, options, starting helpers)",
     lambda s: "bareos-fd-libcloud.py" in s and ("_find_and_load" in s or "start_helpers" in s or "_start" in s)),
    ("job", "job thread: plugin calls, reading the pipe (object bytes from a fetch helper)",
     lambda s: "bareos_libcloud/" in s and "multiprocessing/connection.py" in s),
    ("job", "job thread: plugin calls, other work", lambda s: "bareos_libcloud/" in s or "bareos-fd-libcloud.py" in s),
    ("job", "job thread: emulated daemon (MD5 signature, volume write, catalog, API checks)",
     lambda s: "Thread._bootstrap" in s),
    ("job", "job process, other threads (emulator's main thread, start-up)", lambda s: True),
    ("fetch", "fetch helper: reading the job's messages (pipe)",
     lambda s: _innermost(s) == "pipe" and "Outbox.send" not in s),
    ("fetch", "fetch helper: pickling (headers, replies on the pipe)", lambda s: _innermost(s) == "pickle"),
    ("fetch", "fetch helper: pipe hand-off of the bytes to the job", lambda s: _innermost(s) == "pipe"),
    ("fetch", "fetch helper: signing (libcloud's hooks, HMAC)", lambda s: _innermost(s) == "sign"),
    ("fetch", "fetch helper: libcurl (perform, its header and body callbacks)", lambda s: _innermost(s) == "curl"),
    ("fetch", "fetch helper: HTTP on the thread path (http.client send, status line, headers, body reads)",
     lambda s: _innermost(s) == "http"),
    ("fetch", "fetch helper: libcloud request building (URL, headers, response object)",
     lambda s: _innermost(s) == "libcloud"),
    ("fetch", "fetch helper: plugin helper code (curlfetch.py, fetcher.py, fetch.py, answers.py, timeutil.py)",
     lambda s: _innermost(s) == "plugin"),
    ("fetch", "fetch helper: other (interpreter, start-up)", lambda s: True),
    ("lister", "lister", lambda s: True),
    ("helper", "helper start-up (fork server, imports, driver set-up)", lambda s: True),
    ("", "other processes", lambda s: True),
]


def _frame_class(frame):
    low = frame.lower()
    if "pickle" in low or "multiprocessing/reduction.py" in frame:
        return "pickle"
    if "multiprocessing/connection.py" in frame or "send_raw (" in frame or "_send_data (" in frame:
        return "pipe"
    if "CurlPath.step (" in frame or "pycurl" in low:
        return "curl"
    if "hmac" in low or "signature" in low or "sign_" in low or "_sign" in low or "aws4" in low:
        return "sign"
    if "http/client.py" in frame or "socket.py" in frame or "email/" in frame:
        return "http"
    if "bareos_libcloud/" in frame:
        return "plugin"
    if "libcloud/" in frame:
        return "libcloud"
    return None


def _innermost(stack):
    """The class of the innermost frame that has one (pickling, pipe, signing, HTTP, libcloud, plugin)."""
    for frame in reversed(stack.split(";")):
        cls = _frame_class(frame)
        if cls:
            return cls
    return None


def _kind_key(kind):
    for key in ("job", "fetch", "lister", "helper"):
        if kind.startswith(key):
            return key
    return ""


def cpu_split(raw_path, objects, rate):
    """[(category, samples, ms per object)] in the order of _RULES, and the total samples."""
    counts = collections.Counter()
    for frames, count in read_stacks(raw_path):
        key = _kind_key(_pyspy_kind(frames))
        text = ";".join(fr for fr in frames if not fr.startswith("process "))
        for kind, category, test in _RULES:
            if kind == key and test(text):
                counts[category] += count
                break
    per_obj = 1000.0 / rate / max(objects, 1)
    rows = [(category, counts[category], counts[category] * per_obj) for _, category, _ in _RULES if counts[category]]
    return rows, sum(counts.values())
