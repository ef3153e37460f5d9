"""Job messages, debug tracing and secret scrubbing: the one way text leaves the plugin.

``bareosfd`` may only be called on the job thread (real-fd-trace 8c); helper processes and
the cancel thread therefore never log through here directly.
"""

import syslog
import traceback

SYSLOG_IDENT = "bareos-libcloud"


def plural(number, noun):
    """``1 object``, ``2 objects``."""
    return "%d %s%s" % (number, noun, "" if number == 1 else "s")


class JobLog:
    """Writes job messages and debug lines with every secret value masked."""

    def __init__(self, bareosfd):
        self.fd = bareosfd
        self.secrets = ()
        self.debug_enabled = False
        self.fatal_sent = False
        self.counts = {"error": 0, "warning": 0}

    def configure(self, secrets, debug):
        # Longest first, so that a secret containing another is masked whole.
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        self.debug_enabled = bool(debug)

    def scrub(self, text):
        text = str(text)
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def _send(self, kind, text):
        line = self.scrub(text).rstrip("\n") + "\n"
        self.fd.JobMessage(kind, "libcloud: " + line)

    def info(self, text):
        self._send(self.fd.M_INFO, text)

    def warning(self, text):
        self.counts["warning"] += 1
        self._send(self.fd.M_WARNING, text)

    def error(self, text):
        self.counts["error"] += 1
        self._send(self.fd.M_ERROR, text)

    def fatal(self, text):
        """One M_FATAL per job: later calls only go to the debug trace."""
        if self.fatal_sent:
            self.debug("(further fatal) " + text)
            return
        self.fatal_sent = True
        self._send(self.fd.M_FATAL, text)

    def debug(self, text):
        if not self.debug_enabled:
            return
        line = self.scrub(text)
        try:
            syslog.openlog(SYSLOG_IDENT, syslog.LOG_PID, syslog.LOG_DAEMON)
            syslog.syslog(syslog.LOG_DEBUG, line)
        except OSError:
            pass
        self.fd.DebugMessage(100, "libcloud: " + line + "\n")

    def exception(self, where, exc):
        """Report an unexpected exception as a fatal job message with a scrubbed traceback."""
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.fatal("internal error in %s: %s: %s" % (where, type(exc).__name__, exc))
        self.debug(detail)
