"""The retry journal and the retry policy (no server needed)."""

import os

from bareos_libcloud.journal import Journal, job_key
from bareos_libcloud.retry import RetryPolicy


def test_job_key_strips_the_unique_suffix():
    assert job_key("backup-s3.2026-11-23_01.02.03_04") == "backup-s3"
    assert job_key("plain") == "plain"


def test_journal_survives_a_crash_and_forgets_saved_objects(tmp_path):
    first = Journal(str(tmp_path), "job.2026-11-23_01.02.03_04")
    assert first.load() == set()
    first.add("/@libcloud/b/x", "HTTP 500")
    first.add("/@libcloud/b/y", "timeout")
    # no close(): the daemon died; the entries are on disk already
    second = Journal(str(tmp_path), "job.2026-11-24_01.02.03_05")
    assert second.load() == {"/@libcloud/b/x", "/@libcloud/b/y"}
    second.saved("/@libcloud/b/x")
    second.close()
    third = Journal(str(tmp_path), "job.2026-11-25_01.02.03_06")
    assert third.load() == {"/@libcloud/b/y"}
    third.saved("/@libcloud/b/y")
    third.close()
    assert not os.listdir(tmp_path)


def test_failed_job_keeps_entries(tmp_path):
    journal = Journal(str(tmp_path), "job")
    journal.add("/@libcloud/b/x", "broken")
    journal.close()
    again = Journal(str(tmp_path), "job")
    again.load()
    again.saved("/@libcloud/b/x")
    again.done.clear()  # what BackupSession.close(job_ok=False) does
    again.close()
    assert Journal(str(tmp_path), "job").load() == {"/@libcloud/b/x"}


def test_other_jobs_have_their_own_journal(tmp_path):
    Journal(str(tmp_path), "one").add("/@libcloud/b/x", "r")
    assert Journal(str(tmp_path), "two").load() == set()


def test_retry_policy_backs_off_with_jitter_and_stops():
    waits, reports = [], []
    policy = RetryPolicy(attempts=4, max_wait=1.5, base=0.5, report=reports.append, sleep=waits.append)
    attempts = policy.start("key")
    assert [attempts.retry("HTTP 503") for _ in range(4)] == [True, True, True, False]
    assert len(waits) == 3
    for wait, ceiling in zip(waits, (0.5, 1.0, 1.5)):
        assert ceiling / 2 <= wait <= ceiling
    assert len(reports) == 3 and "HTTP 503" in reports[0]
