"""Log lines stamped in the display zone (``serve``), like every other time Shenpi shows."""

from __future__ import annotations

import logging
from datetime import datetime

from service.display import display_tz


class DisplayZoneFormatter(logging.Formatter):
    """Log timestamps as ISO 8601 in the display zone, not in the machine's zone."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        moment = datetime.fromtimestamp(record.created, display_tz())
        if datefmt:
            return moment.strftime(datefmt)
        return moment.isoformat(timespec="milliseconds")
