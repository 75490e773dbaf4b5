from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from engine.cron import cron_trigger, standard_weekdays

SH = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("field", "names"),
    [
        ("1", "mon"),
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("*/2", "sun,tue,thu,sat"),
        ("6,0", "sun,sat"),
        ("mon-fri", "mon-fri"),
        ("*", "*"),
    ],
)
def test_numeric_weekdays_follow_crontab(field: str, names: str) -> None:
    assert standard_weekdays(field) == names


def test_monday_8am_is_a_monday_in_shanghai() -> None:
    trigger = cron_trigger("0 8 * * 1", SH)
    nxt = trigger.get_next_fire_time(None, datetime(2026, 11, 27, 12, tzinfo=SH))
    assert nxt == datetime(2026, 11, 30, 8, tzinfo=SH)
    assert nxt.weekday() == 0


@pytest.mark.parametrize("expr", ["0 8 * *", "0 25 * * 1", "0 8 * * 9", "x 8 * * 1"])
def test_bad_cron_is_refused(expr: str) -> None:
    with pytest.raises(ValueError):
        cron_trigger(expr, SH)
