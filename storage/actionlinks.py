"""Used action links: a link's id becomes a row the moment someone posts it.

The link itself (a signed token, api/links.py) carries everything it is bound to, so
nothing is stored when one is issued; what must live on the server is the fact that it
was used, keyed by the link's id so that the second of two posts finds the row taken.
A post that is refused (a comment was required, a guard not met) gives its claim back:
the person may try again with the same link.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from storage.once import insert_once
from storage.rows import aware
from storage.tables import action_links as links

if TYPE_CHECKING:
    from storage.store import Store


class ActionLinks:
    """The ``action_links`` table of one Store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._insert = insert_once(store.dialect, links)

    def claim(self, link_id: str, task_id: str, user_id: str, action: str, now: datetime) -> bool:
        """True if this call is the link's first use (a ``pending`` row now holds it)."""
        values = {
            "id": link_id,
            "task_id": task_id,
            "user_id": user_id,
            "action": action,
            "used_at": aware(now, "now"),
            "status": "pending",
            "result": {},
        }
        with self._store._write() as conn:
            return bool(conn.execute(self._insert, values).rowcount == 1)

    def complete(self, link_id: str, result: dict[str, Any]) -> None:
        stmt = (
            sa.update(links)
            .where(links.c.id == link_id, links.c.status == "pending")
            .values(status="done", result=result)
        )
        with self._store._write() as conn:
            conn.execute(stmt)

    def release(self, link_id: str) -> None:
        """Give back a claim whose post was refused and changed nothing."""
        stmt = sa.delete(links).where(links.c.id == link_id, links.c.status == "pending")
        with self._store._write() as conn:
            conn.execute(stmt)

    def get(self, link_id: str) -> dict[str, Any] | None:
        with self._store._read() as conn:
            row = conn.execute(sa.select(links).where(links.c.id == link_id)).mappings()
            found = row.one_or_none()
        return None if found is None else dict(found)

    def prune(self, now: datetime, older_than: timedelta) -> int:
        """Delete rows of links used before ``now - older_than`` (pass more than the
        links' lifetime: a link used that long ago has expired, so its row guards nothing)."""
        cutoff = aware(now, "now") - older_than
        with self._store._write() as conn:
            return int(conn.execute(sa.delete(links).where(links.c.used_at <= cutoff)).rowcount)
