"""Retries of transient object-store failures: exponential backoff with jitter, bounded.

Transient: HTTP 429, 500, 502, 503 (S3 "SlowDown"), 504, refused or reset connections and
timeouts.  Anything else (403, 404, a bad request) fails at once.  libcloud does not retry a 503
(it becomes a plain LibcloudError), so this is the plugin's own, used by the helper processes for
listing pages, GETs and resumes.
"""

import random
import time

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


class Transient(Exception):
    """A failure worth another attempt."""


def is_transient_status(status):
    return status in TRANSIENT_STATUS


class RetryPolicy:
    """``attempts`` tries in all; waits grow from ``base`` seconds, capped at ``max_wait``."""

    def __init__(self, attempts=5, max_wait=30.0, base=0.5, report=None, sleep=time.sleep):
        self.attempts = max(1, attempts)
        self.max_wait = max_wait
        self.base = base
        self.report = report or (lambda text: None)
        self.sleep = sleep

    def start(self, what):
        """A fresh count of attempts for one operation on ``what`` (a key or bucket)."""
        return Attempts(self, what)


class Attempts:
    """The attempts of one operation."""

    def __init__(self, policy, what):
        self.policy = policy
        self.what = what
        self.made = 1

    def retry(self, error):
        """Wait before the next attempt and return True, or return False when none is left."""
        policy = self.policy
        if self.made >= policy.attempts:
            return False
        wait = min(policy.max_wait, policy.base * 2 ** (self.made - 1)) * random.uniform(0.5, 1.0)
        policy.report("retry %d/%d for %r in %.1f s after: %s" % (self.made, policy.attempts - 1, self.what, wait, error))
        self.made += 1
        policy.sleep(wait)
        return True
