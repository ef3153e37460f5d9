"""Retries of transient object-store failures: exponential backoff with jitter, bounded.

Transient: HTTP 429, 500, 502, 503 (S3 "SlowDown"), 504, refused or reset connections and
timeouts.  Anything else (403, 404, a bad request) fails at once.  libcloud does not retry a 503
(it becomes a plain LibcloudError), so this is the plugin's own, used by the helper processes for
listing pages, GETs and resumes, and by the job thread for its direct streams.

Every retried request and every resumed transfer is counted for the job's summary
(:class:`FaultCounts`): a helper reports each one to the job as a ``("retried", text)`` or
``("resumed", text)`` message, whatever the ``debug`` option.
"""

import random
import time

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
#: The two kinds of visible faults: a request sent again, a transfer continued from the byte reached.
RETRIED, RESUMED = "retried", "resumed"


class FaultCounts:
    """The job's count of retried requests and resumed transfers (any helper and the job's own
    direct streams), for its summary; each one's text goes to the debug trace."""

    KINDS = (RETRIED, RESUMED)

    def __init__(self, debug=None):
        self.retried = self.resumed = 0
        self.debug = debug or (lambda text: None)

    def count(self, kind, text):
        """One ``kind`` (RETRIED or RESUMED): the message a helper sent, or the job's own."""
        if kind == RESUMED:
            self.resumed += 1
        else:
            self.retried += 1
        self.debug(text)


class Transient(Exception):
    """A failure worth another attempt."""


def is_transient_status(status):
    return status in TRANSIENT_STATUS


class RetryPolicy:
    """``attempts`` tries in all; waits grow from ``base`` seconds, capped at ``max_wait``.

    ``report(text)`` gets the text of each retry; ``count(kind, text)`` gets it with its kind
    (RETRIED or RESUMED), e.g. FaultCounts.count or a helper's message to the job.
    """

    def __init__(self, attempts=5, max_wait=30.0, base=0.5, report=None, sleep=time.sleep, count=None):
        self.attempts = max(1, attempts)
        self.max_wait = max_wait
        self.base = base
        self.report = report or (lambda text: None)
        self.count = count or (lambda kind, text: None)
        self.sleep = sleep

    def note(self, kind, text):
        """A request sent again (RETRIED) or a transfer continued (RESUMED), reported and counted."""
        self.report(text)
        self.count(kind, text)

    def start(self, what):
        """A fresh count of attempts for one operation on ``what`` (a key or bucket)."""
        return Attempts(self, what)


class Attempts:
    """The attempts of one operation."""

    def __init__(self, policy, what):
        self.policy = policy
        self.what = what
        self.made = 1

    def retry(self, error, kind=RETRIED):
        """Wait before the next attempt and return True, or return False when none is left.

        ``kind``: RESUMED when the next attempt continues a broken transfer from the byte reached."""
        policy = self.policy
        if self.made >= policy.attempts:
            return False
        wait = min(policy.max_wait, policy.base * 2 ** (self.made - 1)) * random.uniform(0.5, 1.0)
        what = "resume" if kind == RESUMED else "retry"
        policy.note(kind, "%s %d/%d for %r in %.1f s after: %s"
                    % (what, self.made, policy.attempts - 1, self.what, wait, error))
        self.made += 1
        policy.sleep(wait)
        return True
