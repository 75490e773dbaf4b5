"""The audit log: query it (the CLI's filters, paged), verify its chains, its head."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query, Request, Response

from api.auth import Admin, Reader
from api.deps import workflow
from api.paging import Cursor, Limit, checked_cursor, page
from api.problems import ApiProblem, invalid
from api.routes import router
from api.schemas import AuditEntry, AuditVerification, Page
from service.queries import Rows, audit_head_view, audit_rows, verify_audit

api = router("audit", 404)
MIN_YEAR, MAX_YEAR = 1900, 9000
Name = Annotated[str | None, Query(max_length=200)]


def _time(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise invalid(f"{name} needs a UTC offset, e.g. +08:00", parameter=f"query.{name}")
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise invalid(
            f"{name} is outside the years {MIN_YEAR}-{MAX_YEAR}", parameter=f"query.{name}"
        )
    return value


@api.get("/audit", response_model=Page[AuditEntry], summary="Query the audit log")
def query_audit(
    request: Request,
    response: Response,
    caller: Reader,
    instance: Name = None,
    actor: Name = None,
    action: Name = None,
    process: Name = None,
    since: Annotated[datetime | None, Query(description="From this time (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Up to this time (ISO 8601).")] = None,
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
