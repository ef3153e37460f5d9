"""Secrets are masked in everything the plugin writes, whatever raised the text."""


from bareos_libcloud.job.joblog import JobLog
from bareos_libcloud.helper.worker import _scrub


class FakeFd:
    M_INFO, M_WARNING, M_ERROR, M_FATAL = 6, 5, 4, 3

    def __init__(self):
        self.messages = []

    def JobMessage(self, kind, text):
        self.messages.append((kind, text))

    def DebugMessage(self, level, text):
        self.messages.append(("debug", text))


def test_job_messages_and_debug_lines_mask_secrets():
    fd = FakeFd()
    log = JobLog(fd)
    log.configure(["AKIAKEYVALUE", "sekret/with+chars", "sekret"], debug=True)
    url = "http://h/b/k?AWSAccessKeyId=AKIAKEYVALUE&Signature=x (secret sekret/with+chars)"
    log.error("GET failed: %s" % url)
    log.debug("retry after: %s" % url)
    try:
        raise RuntimeError("driver said: key=AKIAKEYVALUE secret=sekret")
    except RuntimeError as exc:
        log.exception("start_backup_file", exc)
    text = " ".join(t for _, t in fd.messages)
    assert "AKIAKEYVALUE" not in text and "sekret" not in text
    assert text.count("***") >= 5
    assert sum(1 for k, _ in fd.messages if k == FakeFd.M_FATAL) == 1


def test_one_fatal_message_per_job():
    fd = FakeFd()
    log = JobLog(fd)
    log.fatal("first")
    log.fatal("second")
    assert [t for k, t in fd.messages if k == FakeFd.M_FATAL] == ["libcloud: first\n"]


def test_helper_processes_mask_secrets_too():
    config = {"secrets": ("AKIAKEYVALUE", "sekret")}
    assert _scrub("url?AWSAccessKeyId=AKIAKEYVALUE sekret", config) == "url?AWSAccessKeyId=*** ***"
