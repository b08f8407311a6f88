"""Logging in the shape of OVMS's spdlog lines: [time][thread][logger][level][file:line] text."""

from __future__ import annotations

import logging
import sys
import threading
import time

TRACE = 5
_LEVELS = {
    "TRACE": TRACE,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
}
_NAMES = {
    TRACE: "trace",
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}

serving = logging.getLogger("serving")
modelmanager = logging.getLogger("modelmanager")


class _SpdlogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        millis = int(record.msecs)
        level = _NAMES.get(record.levelno, record.levelname.lower())
        # Handlers run in the logging thread, so this is the OS id of the thread that logged.
        thread = threading.get_native_id()
        line = (
            f"[{stamp}.{millis:03d}][{thread}][{record.name}][{level}]"
            f"[{record.filename}:{record.lineno}] {record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup(level_name: str, log_path: str | None) -> None:
    logging.addLevelName(TRACE, "TRACE")
    handler: logging.Handler
    handler = logging.FileHandler(log_path) if log_path else logging.StreamHandler(sys.stdout)
    handler.setFormatter(_SpdlogFormatter())
    for logger in (serving, modelmanager):
        logger.handlers[:] = [handler]
        logger.setLevel(_LEVELS[level_name])
        logger.propagate = False
