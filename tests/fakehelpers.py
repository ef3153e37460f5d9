"""Helper-process entry points that misbehave on purpose (tests/test_protocol.py).

Each wraps the real entry point (bareos_libcloud.helper.worker) and changes only what it sends, once
per test: the first process to act creates the file ``config["once"]``; processes started after
it behave.  They live in a module of their own because the fork server imports a helper's
target by name.
"""

import os
import pickle
import time

from bareos_libcloud.helper import worker


class _Wrapped:
    """The helper's end of its pipe, with ``change(message)`` applied to what it sends."""

    def __init__(self, conn, change):
        self._conn, self._change = conn, change

    def send(self, message):
        message = self._change(message)
        if message is not None:
            self._conn.send(message)

    def send_bytes(self, data):
        """What the fetch helper's Outbox sends: a pickled message."""
        message = self._change(pickle.loads(data))
        if message is not None:
            self._conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))

    def __getattr__(self, name):
        return getattr(self._conn, name)


def _first_time(config):
    """True for the first caller of the test (it creates the marker file)."""
    try:
        os.close(os.open(config["once"], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def late_signer_main(conn, config):
    """A signer whose first signature comes ``config["late"]`` seconds late (a stalled signer)."""

    def change(message):
        if message[0] == "signed" and _first_time(config):
            time.sleep(config["late"])
        return message

    worker.signer_main(_Wrapped(conn, change), config)


def wrong_id_signer_main(conn, config):
    """A signer that answers its first request with another request's id."""

    def change(message):
        if message[0] == "signed" and _first_time(config):
            return (message[0], message[1] + 1) + tuple(message[2:])
        return message

    worker.signer_main(_Wrapped(conn, change), config)


def wrong_seq_fetcher_main(conn, config):
    """A fetch helper that announces its first object under another download's ``seq``."""

    def change(message):
        if message[0] in ("object", "begin") and _first_time(config):
            return (message[0], message[1] + 1) + tuple(message[2:])
        return message

    worker.fetcher_main(_Wrapped(conn, change), config)


def swapped_seq_fetcher_main(conn, config):
    """A fetch helper that announces its first object under the ``seq`` of the other download it
    runs (seqs 1 and 2): an id the job did give that helper, for another key."""

    def change(message):
        if message[0] in ("object", "begin") and message[1] in (1, 2) and _first_time(config):
            return (message[0], 3 - message[1]) + tuple(message[2:])
        return message

    worker.fetcher_main(_Wrapped(conn, change), config)
