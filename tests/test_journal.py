"""The retry journal and the retry policy (no server needed)."""

import os

import pytest

from bareos_libcloud.journal import Journal, job_key
from bareos_libcloud.retry import RetryPolicy


def test_job_key_strips_the_unique_suffix():
    assert job_key("backup-s3.2026-11-23_01.02.03_04") == "backup-s3"
    assert job_key("plain") == "plain"


def test_journal_survives_a_crash_and_forgets_saved_objects(tmp_path):
    first = Journal(str(tmp_path), "job.2026-11-23_01.02.03_04", "F")
    assert first.load() == set()
    first.add("/@libcloud/b/x", "HTTP 500")
    first.add("/@libcloud/b/y", "timeout")
    # no close(): the daemon died; the entries are on disk already
    second = Journal(str(tmp_path), "job.2026-11-24_01.02.03_05", "F")
    assert second.load() == {"/@libcloud/b/x", "/@libcloud/b/y"}
    second.saved("/@libcloud/b/x")
    second.close()
    third = Journal(str(tmp_path), "job.2026-11-25_01.02.03_06", "F")
    assert third.load() == {"/@libcloud/b/y"}
    third.saved("/@libcloud/b/y")
    third.close()
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".journal")]


def test_failed_job_keeps_entries(tmp_path):
    journal = Journal(str(tmp_path), "job", "F")
    journal.add("/@libcloud/b/x", "broken")
    journal.close()
    again = Journal(str(tmp_path), "job", "F")
    again.load()
    again.saved("/@libcloud/b/x")
    again.close(job_ok=False)
    assert Journal(str(tmp_path), "job", "F").load() == {"/@libcloud/b/x"}


@pytest.mark.parametrize(
    "failed, saving, leaves",
    [("F", "I", False), ("F", "D", False), ("F", "F", True), ("D", "I", False), ("D", "D", True),
     ("D", "F", True), ("I", "I", True), ("I", "D", True), ("I", "F", True)],
)
def test_an_entry_leaves_only_when_a_covering_level_saves_it(tmp_path, failed, saving, leaves):
    """A Differential is based on the Full: an object that failed in the Full and was saved by
    an Incremental would be skipped by the next Differential (docs/guarantees.md)."""
    Journal(str(tmp_path), "job", failed).add("/@libcloud/b/x", "broken")
    journal = Journal(str(tmp_path), "job", saving)
    journal.load()
    journal.saved("/@libcloud/b/x")
    journal.close()
    assert Journal(str(tmp_path), "job", "I").load() == (set() if leaves else {"/@libcloud/b/x"})


def test_an_object_failing_again_keeps_its_highest_level(tmp_path):
    Journal(str(tmp_path), "job", "F").add("/@libcloud/b/x", "broken")
    incremental = Journal(str(tmp_path), "job", "I")
    incremental.load()
    incremental.add("/@libcloud/b/x", "broken again")
    incremental.close()
    differential = Journal(str(tmp_path), "job", "D")
    differential.load()
    differential.saved("/@libcloud/b/x")
    differential.close()
    assert Journal(str(tmp_path), "job", "I").load() == {"/@libcloud/b/x"}


def test_objects_that_no_longer_exist_leave(tmp_path):
    Journal(str(tmp_path), "job", "F").add("/@libcloud/b/x", "broken")
    journal = Journal(str(tmp_path), "job", "I")
    journal.load()
    journal.vanished("/@libcloud/b/x")
    journal.close()
    assert Journal(str(tmp_path), "job", "I").load() == set()


def test_two_jobs_of_one_name_keep_each_others_entries(tmp_path):
    Journal(str(tmp_path), "job", "F").add("/@libcloud/b/old", "broken")
    first = Journal(str(tmp_path), "job.2026-11-25_01.02.03_06", "F", job_id="first")
    second = Journal(str(tmp_path), "job.2026-11-25_01.02.04_07", "F", job_id="second")
    assert first.load() == second.load() == {"/@libcloud/b/old"}
    second.add("/@libcloud/b/new", "HTTP 500")
    second.add("/@libcloud/b/old", "HTTP 500 again")  # recorded again after first read it
    first.add("/@libcloud/b/mine", "timeout")
    first.saved("/@libcloud/b/old")
    first.close()
    second.close()
    assert Journal(str(tmp_path), "job", "I").load() == {"/@libcloud/b/new", "/@libcloud/b/old", "/@libcloud/b/mine"}


def test_other_jobs_have_their_own_journal(tmp_path):
    Journal(str(tmp_path), "one", "F").add("/@libcloud/b/x", "r")
    assert Journal(str(tmp_path), "two", "F").load() == set()


def test_retry_policy_backs_off_with_jitter_and_stops():
    waits, reports = [], []
    policy = RetryPolicy(attempts=4, max_wait=1.5, base=0.5, report=reports.append, sleep=waits.append)
    attempts = policy.start("key")
    assert [attempts.retry("HTTP 503") for _ in range(4)] == [True, True, True, False]
    assert len(waits) == 3
    for wait, ceiling in zip(waits, (0.5, 1.0, 1.5)):
        assert ceiling / 2 <= wait <= ceiling
    assert len(reports) == 3 and "HTTP 503" in reports[0]
