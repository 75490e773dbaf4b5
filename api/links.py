"""``/a/{token}``: one-time action links from notifications (e-mail, per-person webhooks).

``GET`` only shows a page: what the link will do, for whom, on which request, with a
button (and a comment field) that posts back. Mail scanners (Outlook Safe Links and the
like) fetch every link in a message before the person sees it, so a GET that acted would
decide tasks nobody looked at. ``POST`` takes the action, as the link's user, through the
same service call the CLI's ``act`` makes.

A link is refused with a 410 page that says what happened when it has expired, was used
already (when, and what was chosen), or is stale: the task was decided (by whom, what),
cancelled, or now waits for someone else (transferred, reassigned, claimed). A token this
server did not sign gets 404. A refusal changes nothing; a post the task refuses (a
required comment missing, a guard not met) gives the link back, so it can be tried again.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run
# time, and some name dependencies local to the router factory.

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from jinja2 import Environment
from starlette.responses import HTMLResponse, Response

from api.idempotency import IdempotencyGuard
from api.linktokens import ActionLinks, LinkClaims, task_version
from engine.errors import (
    ActionNotAllowed,
    BadLink,
    Conflict,
    InvalidData,
    NotFound,
    WorkflowError,
)
from engine.records import TaskRecord, TaskStatus
from storage.actionlinks import ActionLinks as UsedLinks

log = logging.getLogger("shenpi.links")

Clock = Callable[[], datetime]
MAX_COMMENT = 4000
PRUNE_EVERY_S = 600.0

# Pages carry the token in their URL: no referrer may leak it, no cache keep it, no robot
# index it; they run no script and post only to themselves.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
}

_PAGES = Environment(autoescape=True)
_PAGE = _PAGES.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{{ heading }}</title>
<style>body{font-family:sans-serif;max-width:36em;margin:2em auto;padding:0 1em}
dt{font-weight:bold}textarea{width:100%}button{font-size:1.1em;padding:.4em 1.2em}
.error{color:#a00}</style></head>
<body><h1>{{ heading }}</h1>
{% for line in lines %}<p>{{ line }}</p>{% endfor %}
{% if facts %}<dl>{% for k, v in facts %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>
{% endif %}
{% if error %}<p class="error">{{ error }}</p>{% endif %}
{% if form %}<form method="post">
<p><label for="comment">Comment{% if comment_required %} (required){% endif %}</label><br>
<textarea id="comment" name="comment" rows="4" maxlength="{{ max_comment }}"
{% if comment_required %}required{% endif %}>{{ comment }}</textarea></p>
<p><button type="submit">{{ button }}</button></p>
</form>{% endif %}
</body></html>
"""
)


@dataclass(frozen=True)
class Page:
    status: int
    heading: str
    lines: tuple[str, ...] = ()
    facts: tuple[tuple[str, str], ...] = ()
    form: bool = False
    button: str = ""
    comment_required: bool = False
    comment: str = ""
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def response(self) -> Response:
        html = _PAGE.render(
            heading=self.heading,
            lines=self.lines,
            facts=self.facts,
            form=self.form,
            button=self.button,
            comment_required=self.comment_required,
            comment=self.comment,
            error=self.error,
            max_comment=MAX_COMMENT,
        )
        return HTMLResponse(html, status_code=self.status, headers=PAGE_HEADERS)


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="minutes") if moment else "an unknown time"


def _gone(*lines: str) -> Page:
    return Page(410, "This link can no longer be used", tuple(lines))


class LinkPages:
    """The work behind the two endpoints, apart from HTTP."""

    def __init__(self, workflow: Any, links: ActionLinks, clock: Clock) -> None:
        self.workflow = workflow
        self.links = links
        self.clock = clock
        self.used = UsedLinks(workflow.store)
        self._pruned = 0.0

    def _name(self, user: str) -> str:
        spec = self.workflow.org.users.get(user)
        return f"{spec.name} ({user})" if spec is not None and spec.name else user

    def _refusal(
        self, claims: LinkClaims, check_used: bool = True
    ) -> tuple[Page | None, TaskRecord | None]:
        """Why the link may not be used now (a 410 page), or the task it acts on.
        ``check_used=False`` once this post holds the link's row itself."""
        row = self.used.get(claims.link_id) if check_used else None
        if row is not None:
            result = row.get("result") or {}
            what = f" and chose '{result['action']}'" if result.get("action") else ""
            return _gone(
                f"This link was already used on {_when(row['used_at'])}{what}.",
                f"Task {claims.task_id} is "
                + (f"now in state '{result['state']}'." if result.get("state") else "handled."),
            ), None
        if claims.expired(self.clock()):
            return _gone(
                f"This link expired on {_when(claims.expires_at)}.",
                "Open the request in Shenpi, or ask for a new notification.",
            ), None
        try:
            task = self.workflow.store.get_task(claims.task_id)
        except NotFound:
            return Page(404, "Unknown task", (f"There is no task {claims.task_id}.",)), None
        if task.status != TaskStatus.open:
            if task.decided_by:
                by = self._name(task.decided_by)
                return _gone(
                    f"Task {task.id} was already decided: {by} chose '{task.decision}' "
                    f"on {_when(task.closed_at)}.",
                    "Nothing was changed.",
                ), None
            return _gone(
                f"Task {task.id} was {task.status} ({task.decision or 'no decision'}) "
                f"on {_when(task.closed_at)}.",
                "Nothing was changed.",
            ), None
        if task_version(task) != claims.version:
            claimed = (getattr(task, "meta", None) or {}).get("claimed_by")
            now_with = f"claimed by {self._name(claimed)}" if claimed else ", ".join(task.roles)
            return _gone(
                f"Task {task.id} was reassigned after this link was sent; it now waits for: "
                f"{now_with}.",
                "Nothing was changed.",
            ), None
        return None, task

    def _facts(self, claims: LinkClaims, task: TaskRecord) -> tuple[tuple[str, str], ...]:
        snapshot = self.workflow.store.load_snapshot(task.instance_id)
        proc = self.workflow.process(snapshot.process, snapshot.version)
        return (
            ("Request", f"{proc.spec.title} ({snapshot.id})"),
            ("Task", f"{task.name} ({task.id})"),
            ("Action", self._action_title(task, claims.action)),
            ("As", self._name(claims.user)),
        )

    def _action_spec(self, task: TaskRecord, action: str) -> Any:
        snapshot = self.workflow.store.load_snapshot(task.instance_id)
        proc = self.workflow.process(snapshot.process, snapshot.version)
        tspec = proc.spec.states[task.state].task
        return tspec.actions.get(action) if tspec is not None else None

    def _action_title(self, task: TaskRecord, action: str) -> str:
        spec = self._action_spec(task, action)
        title = getattr(spec, "title", "") if spec is not None else ""
        return f"{title} ({action})" if title else action

    def _comment_required(self, task: TaskRecord, action: str) -> bool:
        spec = self._action_spec(task, action)
        return spec is not None and getattr(spec.comment, "value", "") == "required"

    def _confirm(
        self,
        claims: LinkClaims,
        task: TaskRecord,
        comment: str = "",
        error: str = "",
        status: int = 200,
    ) -> Page:
        title = self._action_title(task, claims.action)
        return Page(
            status,
            f"Confirm: {title}",
            (f"{self._name(claims.user)}, please confirm this decision.",),
            facts=self._facts(claims, task),
            form=True,
            button=f"Confirm {title}",
            comment_required=self._comment_required(task, claims.action),
            comment=comment,
            error=error,
        )

    def _usable(self, token: str) -> Page | tuple[LinkClaims, TaskRecord]:
        """The link's claims and the open task it acts on, or the page saying why not:
        what both the GET and the POST check first, so they refuse alike."""
        try:
            claims = self.links.read(token)
        except BadLink as exc:
            return Page(404, "Not a valid link", (str(exc),))
        refusal, task = self._refusal(claims)
        if refusal is not None:
            return refusal
        assert task is not None
        return claims, task

    def show(self, token: str) -> Page:
        """GET: a page, never an action."""
        found = self._usable(token)
        if isinstance(found, Page):
            return found
        claims, task = found
        return self._confirm(claims, task)

    def perform(self, token: str, comment: str) -> Page:
        """POST: take the action once, as the link's user."""
        found = self._usable(token)
        if isinstance(found, Page):
            return found
        claims, task = found
        comment = comment.strip()
        if len(comment) > MAX_COMMENT:
            error = f"The comment is longer than {MAX_COMMENT} characters."
            return self._confirm(claims, task, comment[:MAX_COMMENT], error, 422)
        if not comment and self._comment_required(task, claims.action):
            return self._confirm(claims, task, "", "A comment is required for this action.", 422)
        now = self.clock()
        if time.monotonic() - self._pruned > PRUNE_EVERY_S:
            self._pruned = time.monotonic()
            # a row older than two lifetimes guards a link that expired long ago
            self.used.prune(now, 2 * self.links.ttl)
        if not self.used.claim(claims.link_id, task.id, claims.user, claims.action, now):
            return self._refusal(claims)[0] or _gone("This link was already used.")
        try:
            page = self._act(claims, task, comment or None)
        except BaseException:
            self.used.release(claims.link_id)
            raise
        if page.status != 200:
            self.used.release(claims.link_id)
        else:
            self.used.complete(claims.link_id, page.extra)
        return page

    def _act(self, claims: LinkClaims, task: TaskRecord, comment: str | None) -> Page:
        for attempt in range(3):
            try:
                snapshot = self.workflow.act(task.id, claims.action, claims.user, {}, comment)
            except Conflict:
                if attempt == 2:
                    return Page(409, "Changed meanwhile", ("Please try again.",))
                refusal, _ = self._refusal(claims, check_used=False)
                if refusal is not None:
                    return refusal
                continue
            except ActionNotAllowed as exc:
                refusal, _ = self._refusal(claims, check_used=False)
                if refusal is not None:
                    return refusal
                return self._confirm(claims, task, comment or "", exc.reason, 403)
            except InvalidData as exc:
                return Page(
                    422,
                    "This action needs more than a link can give",
                    (str(exc), "Take it in Shenpi (command line or API) instead."),
                )
            except WorkflowError as exc:
                return Page(409, "Not done", (str(exc),))
            result = {
                "by": claims.user,
                "action": claims.action,
                "state": snapshot.state,
                "status": snapshot.status,
            }
            title = self._action_title(task, claims.action)
            return Page(
                200,
                f"Done: {title}",
                (
                    f"{self._name(claims.user)} chose '{claims.action}' on task {task.id}.",
                    f"The request is now in state '{snapshot.state}' ({snapshot.status}).",
                ),
                extra=result,
            )
        raise AssertionError("unreachable")


def link_scope(token: str) -> str:
    """Idempotency keys on a link's POST belong to the link (its token is the credential)."""
    return "link:" + hashlib.sha256(token.encode()).hexdigest()[:32]


def links_router(
    workflow: Any, links: ActionLinks, clock: Clock, guard: IdempotencyGuard | None = None
) -> APIRouter:
    """The two endpoints of the action links made by ``links`` (with ``guard``, POST also
    honours an ``Idempotency-Key``, though a link acts once anyway)."""
    pages = LinkPages(workflow, links, clock)
    router = APIRouter(tags=["action links"])

    @router.get(
        "/a/{token}",
        summary="The confirmation page of an action link (never acts)",
        include_in_schema=False,  # a page for people (docs/http-api.md), not an API
        response_class=HTMLResponse,
        responses={404: {"description": "Not a valid link"}, 410: {"description": "Gone"}},
    )
    async def show(token: str) -> Response:
        page = await run_in_threadpool(pages.show, token)
        return page.response()

    @router.post(
        "/a/{token}",
        summary="Take the action of an action link, once",
        include_in_schema=False,
        response_class=HTMLResponse,
        dependencies=[guard.dependency(link_scope)] if guard is not None else [],
        responses={
            403: {"description": "The task refused the action"},
            404: {"description": "Not a valid link"},
            410: {"description": "Expired, used, or the task changed"},
            422: {"description": "A comment is required, or the action needs values"},
        },
    )
    async def perform(token: str, request: Request) -> Response:
        comment = ""
        if request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            form = await request.form()
            value = form.get("comment")
            comment = value if isinstance(value, str) else ""
        page = await run_in_threadpool(pages.perform, token, comment)
        log.info("link %s: %s", token[:12], page.status)
        return page.response()

    return router
