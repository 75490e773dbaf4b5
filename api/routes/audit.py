"""The audit log: query it (the CLI's filters, paged), verify its chains, its head."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query, Request, Response

from api.auth import Admin, Reader
from api.deps import workflow
from api.paging import Cursor, Limit, checked_cursor, page
from api.problems import ApiProblem, invalid
from api.routes import router
from api.schemas import AuditEntry, AuditVerification, Page, query_name
from service.queries import Rows, audit_head_view, audit_rows, verify_audit

api = router("audit", 404)
# the CLI's range of times; a bound beyond it is the same as the range's end
EARLIEST = datetime(1900, 1, 2, tzinfo=UTC)
LATEST = datetime(9000, 12, 30, tzinfo=UTC)
Name = Annotated[str | None, query_name()]


def _time_query(description: str) -> Any:
    return Query(max_length=64, description=description, json_schema_extra={"format": "date-time"})


def _time(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 / RFC 3339 instant with its offset (a bare number is no time)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or not any(c in value for c in "-:"):
        raise invalid(
            f"{name}: expected an ISO 8601 time, e.g. 2026-09-30T10:00+08:00",
            parameter=f"query.{name}",
        )
    if moment.tzinfo is None:
        raise invalid(f"{name} needs a UTC offset, e.g. +08:00", parameter=f"query.{name}")
    if moment.year <= EARLIEST.year:  # compared by year: far offsets overflow in UTC
        return EARLIEST
    return LATEST if moment.year >= LATEST.year else moment


@api.get("/audit", response_model=Page[AuditEntry], summary="Query the audit log")
def query_audit(
    request: Request,
    response: Response,
    caller: Reader,
    instance: Name = None,
    actor: Name = None,
    action: Name = None,
    process: Name = None,
    since: Annotated[str | None, _time_query("From this time (ISO 8601, with offset).")] = None,
    until: Annotated[str | None, _time_query("Up to this time (ISO 8601, with offset).")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """By seq (``run.py audit``). The whole log is an operator view (admin scope); with
    ``instance``, a read token sees that instance's entries masked as in its history."""
    wf = workflow(request)
    if instance is None and not caller.may("admin"):
        raise ApiProblem(
            "forbidden",
            "the whole audit log needs the admin scope; pass instance=ID for one instance",
        )
    rows = audit_rows(
        wf,
        instance_id=instance,
        actor=actor,
        action=action,
        process=process,
        since=_time(since, "since"),
        until=_time(until, "until"),
        limit=limit,
        after=checked_cursor("audit", cursor),
    )
    if not caller.may("admin") and instance is not None:
        snapshot = wf.store.load_snapshot(instance)
        rows = Rows(wf.visible_history(snapshot, rows.items, caller.user), rows.next)
    return page(request, response, rows)


@api.get("/audit/verify", response_model=AuditVerification, summary="Verify the hash chains")
def verify(request: Request, caller: Admin) -> dict[str, Any]:
    """Recompute every chain (``run.py audit --verify``); ``ok`` false lists problems."""
    check = verify_audit(workflow(request), None, False)
    return {"ok": not check.problems, "problems": list(check.problems), "summary": check.summary()}


@api.get("/audit/head", summary="The log's head, to keep outside the database")
def head(request: Request, caller: Admin) -> dict[str, Any]:
    wf = workflow(request)
    return audit_head_view(wf, wf.clock())
