"""``POST /v1/hooks/{sender}``: systems that act for people (a chat bot, an ERP).

The request is a Standard Webhooks delivery (https://www.standardwebhooks.com/): headers
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (``v1,<base64 HMAC>`` of
``{id}.{timestamp}.{body}`` under the sender's ``whsec_`` secret), checked with the
official ``standardwebhooks`` library against each of the sender's secrets (two during a
rotation) and refused when the timestamp is more than 5 minutes off. The body says who
the sender acts for and what they do:

    {"as": "zhao.lei", "task": "<instance>-1", "action": "accept",
     "comment": "optional", "variables": {"first_contact": "..."}}
    {"as": "wang.fang", "start": "complaint", "variables": {...}}

Answers: 200 with the outcome (also when the task was already decided: the sender must
stop retrying, and learns who decided what); 401 for a bad signature or an unknown
sender (the same answer, so a sender's name cannot be probed); 403 when the sender may
not act for that user or start that process, or the user may not take the action; 404
for an unknown task; 409 while the same ``webhook-id`` is being handled; 422 for a body
that is not valid. A delivery is handled once per ``(sender, webhook-id)``: a retry gets
the first 2xx answer again (header ``Idempotent-Replayed: true``). Refusals keep nothing,
so a retry after the cause is fixed (the user added to ``acts_for``) is judged afresh.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run
# time, and some name dependencies local to the router factory.

import base64
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.responses import JSONResponse, Response

from api.hookconfig import HooksConfig, Sender
from api.idempotency import IdempotencyGuard
from api.problem_reply import Reply, problem
from api.problems import problem_for
from engine.errors import ActionNotAllowed, Conflict, InvalidData, ShenpiError
from engine.records import Snapshot, TaskRecord, TaskStatus
from engine.values import load_json_object
from storage.hookreceipts import WebhookReceipts

log = logging.getLogger("shenpi.hooks")

Clock = Callable[[], datetime]
MAX_WEBHOOK_ID = 255
PRUNE_EVERY_S = 600.0
REPLAYED = "Idempotent-Replayed"
# Checked when the sender is unknown, so that answer takes as long as a bad signature.
_DUMMY = Webhook("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
_UNAUTHORIZED = {"WWW-Authenticate": 'Webhook realm="shenpi", scheme="standard-webhooks-v1"'}


class HookBody(BaseModel):
    """What a sender asks for: a decision on a task, or a new instance, as user ``as``."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=False)

    as_: str = Field(alias="as", min_length=1, description="The user the sender acts for.")
    task: str | None = Field(default=None, min_length=1, description="Task to decide.")
    action: str | None = Field(default=None, min_length=1, description="The task's action.")
    comment: str | None = Field(default=None, description="Recorded with the decision.")
    variables: dict[str, Any] = Field(default_factory=dict, description="Inputs of the step.")
    start: str | None = Field(default=None, min_length=1, description="Process to start.")

    @model_validator(mode="after")
    def _one_request(self) -> "HookBody":
        if (self.task is None) == (self.start is None):
            raise ValueError("give either 'task' (with 'action') or 'start', not both or neither")
        if self.task is not None and self.action is None:
            raise ValueError("'action' is required with 'task'")
        if self.start is not None and (self.action is not None or self.comment is not None):
            raise ValueError("'action' and 'comment' belong to a 'task' decision, not a 'start'")
        return self


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    kind: str = ""  # a problem's kind; empty for a success

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def verify(sender: Sender | None, body: bytes, headers: dict[str, str]) -> bool:
    """True if one of the sender's secrets signed this delivery within 5 minutes."""
    hooks = [Webhook(s.get_secret_value()) for s in sender.secrets] if sender else [_DUMMY]
    ok = False
    for hook in hooks:
        try:
            hook.verify(body, headers, json_parse=False)
            ok = True
        # the library raises ValueError for a malformed signature header and
        # UnicodeDecodeError (a ValueError) for a body that is not UTF-8
        except (WebhookVerificationError, ValueError):
            pass
    return ok and sender is not None


def _instance(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "id": snapshot.id,
        "process": snapshot.process,
        "state": snapshot.state,
        "status": snapshot.status,
        "outcome": snapshot.outcome,
        "open_tasks": [t.id for t in snapshot.tasks],
    }


def decided(task: TaskRecord) -> dict[str, Any]:
    """Who decided a closed task, and what."""
    return {
        "task": task.id,
        "status": task.status,
        "decision": task.decision,
        "decided_by": task.decided_by,
        "closed_at": task.closed_at.isoformat() if task.closed_at else None,
    }


def _pointer(loc: tuple[Any, ...]) -> str:
    return "#/" + "/".join(str(p) for p in loc)


class HookHandler:
    """The work behind the endpoint, apart from HTTP: verify, dedupe, act."""

    def __init__(self, workflow: Any, config: HooksConfig | None, clock: Clock) -> None:
        self.workflow = workflow
        self.config = config
        self.clock = clock
        self.receipts = WebhookReceipts(workflow.store)
        self._pruned = 0.0

    def sender(self, name: str) -> Sender | None:
        return self.config.senders.get(name) if self.config is not None else None

    def handle(self, sender: Sender, webhook_id: str, raw: bytes) -> tuple[Answer, bool]:
        """The answer to a verified delivery, and whether it is a replay."""
        now = self.clock()
        if time.monotonic() - self._pruned > PRUNE_EVERY_S:  # receipts older than a week
            self._pruned = time.monotonic()
            self.receipts.prune(now)
        receipt = self.receipts.claim(sender.name, webhook_id, now)
        if receipt.verdict == "replay":
            return Answer(int(receipt.http_status or 200), dict(receipt.body or {})), True
        if receipt.verdict == "busy":
            detail = f"webhook {webhook_id!r} is being handled right now; retry later"
            return Answer(409, {"detail": detail}, "in-progress"), False
        assert receipt.received_at is not None
        try:
            answer = self._answer(sender, raw)
        except BaseException:
            self.receipts.release(sender.name, webhook_id, receipt.received_at)
            raise
        if answer.ok:
            self.receipts.complete(
                sender.name, webhook_id, receipt.received_at, answer.status, answer.body
            )
        else:
            self.receipts.release(sender.name, webhook_id, receipt.received_at)
        return answer, False

    def _answer(self, sender: Sender, raw: bytes) -> Answer:
        try:
            data = load_json_object(raw.decode("utf-8"), "body")
            body = HookBody.model_validate(data)
        except UnicodeDecodeError:
            return Answer(422, {"detail": "the body is not UTF-8 text"}, "invalid-request")
        except InvalidData as exc:
            return Answer(422, {"detail": str(exc)}, "invalid-request")
        except ValidationError as exc:
            errors = [
                {"detail": e["msg"], "pointer": _pointer(e["loc"])}
                for e in exc.errors(include_url=False)
            ]
            detail = "; ".join(f"{e['pointer']}: {e['detail']}" for e in errors)
            return Answer(422, {"detail": detail, "errors": errors}, "invalid-request")
        user = body.as_
        if user not in sender.acts_for:
            detail = f"sender {sender.name!r} may not act for user {user!r}"
            return Answer(403, {"detail": detail}, "sender-not-allowed")
        try:
            if body.start is not None:
                return self._start(sender, body)
            return self._decide(sender, body)
        except ShenpiError as exc:  # answered as the rest of the API answers it
            found = problem_for(exc)
            return Answer(found.status, {"detail": found.detail} | found.extensions, found.slug)

    def _start(self, sender: Sender, body: HookBody) -> Answer:
        assert body.start is not None
        if body.start not in sender.may_start:
            detail = f"sender {sender.name!r} may not start process {body.start!r}"
            return Answer(403, {"detail": detail}, "sender-not-allowed")
        snapshot = self.workflow.start(body.start, body.as_, body.variables)
        result = {"result": "started", "by": body.as_, "sender": sender.name}
        return Answer(200, result | {"instance": _instance(snapshot)})

    def _decide(self, sender: Sender, body: HookBody) -> Answer:
        assert body.task is not None and body.action is not None
        store = self.workflow.store
        for attempt in range(3):
            task = store.get_task(body.task)
            if task.status != TaskStatus.open:
                return self._already(task)
            try:
                snapshot = self.workflow.act(
                    body.task, body.action, body.as_, body.variables, body.comment
                )
            except ActionNotAllowed:
                # decided by someone else between our read and our write? then say so
                again = store.get_task(body.task)
                if again.status != TaskStatus.open:
                    return self._already(again)
                raise
            except Conflict:  # another step on the instance won the race: look again
                if attempt == 2:
                    raise
                continue
            result = {
                "result": "decided",
                "task": body.task,
                "action": body.action,
                "by": body.as_,
                "sender": sender.name,
            }
            return Answer(200, result | {"instance": _instance(snapshot)})
        raise AssertionError("unreachable")

    def _already(self, task: TaskRecord) -> Answer:
        snapshot = self.workflow.store.load_snapshot(task.instance_id)
        return Answer(
            200, {"result": "already_decided"} | decided(task) | {"instance": _instance(snapshot)}
        )


def _reply(answer: Answer, replayed: bool) -> Response:
    if answer.ok:
        headers = {REPLAYED: "true"} if replayed else None
        return JSONResponse(answer.body, status_code=answer.status, headers=headers)
    body = dict(answer.body)
    detail = str(body.pop("detail", ""))
    return problem(answer.kind, detail, **body)


@dataclass(frozen=True)
class Verified:
    """A delivery whose signature checked out: its sender, id and raw body."""

    sender: Sender
    webhook_id: str
    raw: bytes


def hooks_router(
    workflow: Any,
    config: HooksConfig | None,
    clock: Clock,
    guard: IdempotencyGuard | None = None,
) -> APIRouter:
    """The webhook endpoint for the senders of ``config`` (None: every sender is refused).

    ``workflow`` is the service facade (service.workflow.Workflow) the CLI uses too. The
    app must answer :class:`api.problem_reply.Reply` (``api.mount`` sees to it). With
    ``guard``, an ``Idempotency-Key`` is honoured too, scoped to the sender and claimed
    only once the signature checked out; ``webhook-id`` is the key senders normally use.
    """
    handler = HookHandler(workflow, config, clock)
    router = APIRouter(tags=["webhooks"])

    async def verified(sender: str, request: Request) -> Verified:
        raw = await request.body()
        known = handler.sender(sender)
        headers = dict(request.headers)
        if not verify(known, raw, headers) or known is None:
            detail = "the webhook signature, its timestamp (5 minutes) or the sender is not valid"
            raise Reply(problem("bad-signature", detail, headers=_UNAUTHORIZED))
        webhook_id = headers.get("webhook-id", "")
        if len(webhook_id) > MAX_WEBHOOK_ID or not webhook_id.isprintable():
            detail = f"webhook-id must be at most {MAX_WEBHOOK_ID} printable characters"
            raise Reply(problem("invalid-request", detail))
        return Verified(known, webhook_id, raw)

    def sender_scope(hook: Annotated[Verified, Depends(verified)]) -> str:
        return f"hook:{hook.sender.name}"

    @router.post(
        "/v1/hooks/{sender}",
        summary="A signed webhook from a system acting for a person",
        # documented in docs/http-api.md: its body is signed bytes, not a schema a client
        # could fill in, and nothing but a sender holding the secret can call it
        include_in_schema=False,
        dependencies=[guard.dependency(sender_scope)] if guard is not None else [],
        responses={
            200: {"description": "Done, or already decided (with who decided what)."},
            401: {"description": "Bad signature, stale timestamp or unknown sender."},
            403: {"description": "The sender may not act for the user, or the user may not act."},
            404: {"description": "Unknown task or process."},
            409: {"description": "The same webhook-id is being handled; retry."},
            422: {"description": "The body is not valid."},
        },
    )
    async def receive(hook: Annotated[Verified, Depends(verified)]) -> Response:
        answer, replayed = await run_in_threadpool(
            handler.handle, hook.sender, hook.webhook_id, hook.raw
        )
        log.info("hook %s %s: %s", hook.sender.name, hook.webhook_id, answer.status)
        return _reply(answer, replayed)

    return router
