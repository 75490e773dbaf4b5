"""``serve``: APScheduler calls ``tick`` every few seconds until stopped.

The scheduler itself holds no state worth keeping: timers and scheduled runs live in the
database and are claimed there, so a crash, a restart or a second worker loses nothing and
doubles nothing. Cron slots of the YAML ``schedules:`` are computed with APScheduler's
triggers inside ``tick``.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from notifiers.outbox import ConsoleChannel, dispatch
from service.display import DisplayZoneFormatter, display_tz, iso
from service.timekeeper import tick
from service.workflow import Workflow

log = logging.getLogger("shenpi.serve")
LOG_FORMAT = "%(asctime)s %(name)s %(message)s"


def configure_logging() -> None:
    """Log lines stamped in the display zone, like every other time Shenpi shows.

    Without this, ``logging`` stamps lines in the machine's zone (often UTC on servers), so
    a tick logged at 01:00 would sit next to a deadline shown as 09:00 the same instant.
    Like ``logging.basicConfig``, it leaves a root logger that is already set up alone.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(DisplayZoneFormatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def one_tick(wf: Workflow, fixed_now: datetime | None = None) -> None:
    now = fixed_now or wf.clock()
    try:
        report = tick(wf, now)
    finally:  # notices already committed go out even if this tick failed
        sent = dispatch(wf.store, wf.org, [ConsoleChannel(print)], now, limit=10_000)
    if report.fired or report.started or sent or report.failed:
        log.info("tick %s: %s, %d notice(s) sent", iso(now), report.as_dict(), sent)


def run_scheduler(
    wf: Workflow, every: float = 5.0, once: bool = False, fixed_now: datetime | None = None
) -> None:
    configure_logging()
    one_tick(wf, fixed_now)
    if once:
        return
    zone = display_tz()  # APScheduler's own lines ("next run at ...") use its zone
    scheduler = BlockingScheduler(timezone=zone)
    scheduler.add_job(
        one_tick,
        IntervalTrigger(seconds=every, timezone=zone),
        args=(wf, fixed_now),
        id="tick",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        threading.Thread(target=scheduler.shutdown, kwargs={"wait": False}).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("serving: tick every %.1fs", every)
    scheduler.start()
