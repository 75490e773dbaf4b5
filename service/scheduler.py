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

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from notifiers.outbox import Outlet
from service.display import display_tz, iso
from service.logformat import DisplayZoneFormatter
from service.timekeeper import tick_and_send
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


def one_tick(wf: Workflow, fixed_now: datetime | None = None, outlet: Outlet | None = None) -> None:
    now = fixed_now or wf.clock()
    outlet = outlet or Outlet.console(print)
    result = tick_and_send(wf, now, outlet)
    report, sent = result.report, result.sent
    if report.fired or report.started or report.reports or sent.handled or report.failed:
        log.info(
            "tick %s: %s, %d delivered, %d to retry, %d held back, %d dead",
            iso(now),
            report.as_dict(),
            sent.sent,
            sent.retried,
            sent.held,
            sent.dead,
        )


def run_scheduler(
    wf: Workflow,
    every: float = 5.0,
    once: bool = False,
    fixed_now: datetime | None = None,
    outlet: Outlet | None = None,
) -> None:
    configure_logging()
    outlet = outlet or Outlet.console(print)
    zone = display_tz()  # APScheduler's own lines ("next run at ...") use its zone
    scheduler = BlockingScheduler(timezone=zone)
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stopping.set()
        if scheduler.running:
            threading.Thread(target=scheduler.shutdown, kwargs={"wait": False}).start()

    if not once:  # a signal during the first tick (it may send a backlog) stops cleanly too
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    one_tick(wf, fixed_now, outlet)
    if once or stopping.is_set():
        return

    def job() -> None:
        if stopping.is_set():  # the signal came between the first tick and start()
            scheduler.shutdown(wait=False)
            return
        one_tick(wf, fixed_now, outlet)

    scheduler.add_job(
        job,
        IntervalTrigger(seconds=every, timezone=zone),
        id="tick",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )

    log.info("serving: tick every %.1fs", every)
    scheduler.start()


def start_background(
    wf: Workflow,
    every: float = 5.0,
    fixed_now: datetime | None = None,
    outlet: Outlet | None = None,
) -> BackgroundScheduler:
    """The same ticks on a thread of their own, first one at once: for ``serve`` with the
    HTTP API, whose server owns the main thread and its signals. The caller stops it
    with ``shutdown(wait=True)``, which lets a tick in progress finish."""
    configure_logging()
    outlet = outlet or Outlet.console(print)
    zone = display_tz()
    scheduler = BackgroundScheduler(timezone=zone)
    scheduler.add_job(
        one_tick,
        IntervalTrigger(seconds=every, timezone=zone),
        args=(wf, fixed_now, outlet),
        id="tick",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
        next_run_time=datetime.now(zone),
    )
    scheduler.start()
    log.info("scheduler: tick every %.1fs", every)
    return scheduler
