"""Logging helpers for a daemon that may be flooded with bad input."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

_LOG_EVERY_S = 5.0


class RateLimitedLog:
    """Logs the first few events, then a summary at most every few seconds (bad input can be a flood)."""

    def __init__(self, logger: logging.Logger, first: int = 10) -> None:
        self._log = logger
        self._first = first
        self._seen = 0
        self._suppressed = 0
        self._last = 0.0

    def warning(self, message: str) -> None:
        self._seen += 1
        now = time.monotonic()
        if self._seen <= self._first or now - self._last >= _LOG_EVERY_S:
            extra = f" ({self._suppressed} similar messages suppressed)" if self._suppressed else ""
            self._log.warning("%s%s", message, extra)
            self._last, self._suppressed = now, 0
        else:
            self._suppressed += 1


class JsonLines(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message (and the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def use_json_logs() -> None:
    """Every handler of the root logger writes JSON lines from now on."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonLines())
