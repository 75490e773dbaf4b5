"""A dispatcher in an OS process of its own, for the two-process test on PostgreSQL.

Run as ``python -m tests.notifiers.dispatch_worker DB_URL PROCESSES CHANNELS_YAML NOW...``:
for each ``NOW`` (ISO 8601) it prints ``ready NOW``, waits for a line on stdin (so both
workers start each round together and neither sees the other's lease as expired), drains
what is due, then prints ``done NOW SENT``. Secrets come from the environment, as in
production.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

from notifiers.config import load_channels_file
from notifiers.outbox import Dispatcher, Outlet
from service.workflow import org_catalog
from storage.store import Store


def main(argv: list[str]) -> int:
    db_url, processes, channels, *moments = argv
    store = Store.open(db_url)
    org = org_catalog(Path(processes)).org
    outlet = Outlet.of(load_channels_file(Path(channels), os.environ))
    dispatcher = Dispatcher(store, org, outlet)
    try:
        for text in moments:
            print(f"ready {text}", flush=True)
            sys.stdin.readline()
            now = datetime.fromisoformat(text)
            sent = 0
            while True:
                report = dispatcher.run(now, limit=3)
                sent += report.sent
                if not report.handled and not report.expanded:
                    break
            print(f"done {text} {sent}", flush=True)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
