"""Request and response bodies of the API, as pydantic models (they make /openapi.json).

The response shapes are the CLI's ``-o json`` shapes (service/views.py): a script moving
from ``run.py ... -o json`` to HTTP reads the same keys. Models allow extra keys, as the
contract says keys may be added but never renamed or dropped.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

T = TypeVar("T")

# What engine/values.py accepts (check_name, check_text), said in the schema so clients
# and generated tests know it: names are one line without control characters; text may
# hold newlines and tabs.
NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$"
NAME = Field(min_length=1, max_length=200, pattern=NAME_PATTERN)
VariableName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NAME_PATTERN)]
Variables = dict[VariableName, Any]


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Task(Open):
    id: str
    instance_id: str
    process: str
    name: str
    state: str
    role: str | None
    roles: list[str]
    pending_roles: list[str]
    mode: str
    status: str
    actions: list[str]
    due_at: str | None
    overdue: bool
    created_at: str | None
    closed_at: str | None
    decision: str | None
    decided_by: str | None
    signoffs: list[dict[str, Any]]
    title: str | None = None
    seconds_left: int | None = None


class Instance(Open):
    id: str
    process: str
    version: int
    state: str
    status: str
    outcome: str | None
    requester: str
    variables: dict[str, Any]
    tasks: list[dict[str, Any]]
    created_at: str
    updated_at: str


class InstanceDetail(Instance):
    history: list[dict[str, Any]]
    deadlines: dict[str, Any]
    # linked processes: the parent {id, process, state} that started this instance, and
    # the children it started, each {id, process, state, wait, on_parent_end, status, outcome}
    parent: dict[str, Any] | None = None
    children: list[dict[str, Any]] = []


class AuditEntry(Open):
    seq: int
    at: str
    recorded_at: str
    actor: str
    on_behalf_of: str | None
    instance_id: str | None
    process: str
    task_id: str | None
    action: str
    from_state: str | None
    to_state: str | None
    data: dict[str, Any]


class Page(BaseModel, Generic[T]):
    """One page; ``next_cursor`` continues after it (null: nothing more)."""

    items: list[T]
    next_cursor: str | None = None


class Decision(BaseModel):
    """A decision on a task: the action (one of the task's ``actions``), an optional
    comment, and values for the variables the action accepts (numbers exact: give
    amounts as JSON numbers or strings, never rounded)."""

    model_config = ConfigDict(extra="forbid")

    action: str = NAME
    comment: str | None = Field(default=None, max_length=4000, pattern=TEXT_PATTERN)
    variables: Variables = Field(default_factory=dict)


Comment = Annotated[str, StringConstraints(max_length=4000, pattern=TEXT_PATTERN)]
Why = Annotated[str, StringConstraints(min_length=1, max_length=4000, pattern=TEXT_PATTERN)]
# a user, task or state id: one line, as check_name takes
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NAME_PATTERN)]


class CommentRequest(BaseModel):
    """An optional comment, kept in the audit log and sent with the notice (withdraw,
    remind). The body itself may be left out."""

    model_config = ConfigDict(extra="forbid")

    comment: Comment | None = None


class CcRequest(BaseModel):
    """Copy the instance (抄送) to ``to``: told now, and they may see it (masked)."""

    model_config = ConfigDict(extra="forbid")

    to: list[Name] = Field(min_length=1, max_length=100)
    comment: Comment | None = None


class TransferRequest(BaseModel):
    """Give the caller's turn on the task (转交) to ``to`` alone; ``comment`` says why."""

    model_config = ConfigDict(extra="forbid")

    to: Name
    comment: Why


class AddSignerRequest(BaseModel):
    """Add people to the task (加签): ``before`` the caller (they decide first, then it
    comes back), ``after`` (the caller agrees now, they decide next) or ``parallel`` (they
    sign beside the caller); ``mode`` among them: any one (或签), all (会签) or in order
    (依次)."""

    model_config = ConfigDict(extra="forbid")

    users: list[Name] = Field(min_length=1, max_length=100)
    where: Literal["before", "after", "parallel"]
    mode: Literal["any", "all", "sequence"] = "any"
    comment: Comment | None = None


class RollbackRequest(BaseModel):
    """Send the request back (退回) to an earlier state it has been in, or ``start``: to
    the requester to revise and resubmit; ``comment`` says why (the receiver is told)."""

    model_config = ConfigDict(extra="forbid")

    to: Name = Field(description="A state this instance has been in before, or 'start'.")
    comment: Why


class BatchRequest(Decision):
    """One decision on several tasks (批量审批): each task in a transaction of its own, in
    the order given; ``comment`` and ``variables`` go with each."""

    task_ids: list[Name] = Field(
        min_length=1,
        max_length=1000,
        json_schema_extra={"uniqueItems": True},  # said here, refused by service.batch (422)
    )


class BatchItem(Open):
    """What became of one task of a batch. A refused one has ``ok: false``, ``error`` in
    words, and ``problem``: the problem document the single decision would have answered
    (``type``, ``status``, ``detail``, and e.g. ``decided_by``)."""

    task_id: str
    action: str
    ok: bool
    error: str | None
    instance_id: str | None
    state: str | None
    status: str | None
    outcome: str | None
    open_tasks: list[str]
    problem: dict[str, Any] | None = None


class BatchResult(BaseModel):
    """``ok``: every task went through."""

    ok: bool
    results: list[BatchItem]


class DecisionRow(Open):
    """One decision or signature a person gave (``tasks --done-by`` row)."""

    id: str
    instance_id: str
    process: str
    state: str | None
    action: str
    comment: str | None
    at: str
    on_behalf_of: str | None
    to_state: str | None
    seq: int
    task_status: str | None
    decision: str | None
    decided_by: str | None


class StartRequest(BaseModel):
    """Start an instance of ``process`` (its latest deployed version) as the caller."""

    model_config = ConfigDict(extra="forbid")

    process: str = NAME
    variables: Variables = Field(default_factory=dict)


class Diagram(Open):
    instance_id: str
    process: str
    version: int
    state: str
    status: str
    open_tasks: list[str]
    mermaid: str


class Definition(Open):
    process: str
    version: int
    title: str | None = None
    file: str
    source_hash: str
    deployed_at: str
    deployed_by: str


class DefinitionSource(Definition):
    source: str


class ValidateRequest(BaseModel):
    """YAML text to check as a file named ``file`` would be (against the deployed org)."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(max_length=100_000)
    file: str = Field(default="posted.yaml", min_length=1, max_length=200, pattern=NAME_PATTERN)


class DefinitionProblem(BaseModel):
    file: str
    line: int
    col: int
    message: str


class Validation(BaseModel):
    valid: bool
    kind: str | None = None
    name: str | None = None
    problems: list[DefinitionProblem]


class AuditVerification(BaseModel):
    ok: bool
    problems: list[str]
    summary: list[str]


class Health(BaseModel):
    status: str
    database: str | None = None
    revision: str | None = None
    expected_revision: str | None = None


def path_name(description: str) -> Any:
    """A path parameter naming something (an id, a process): a name as check_name takes."""
    from fastapi import Path

    return Path(min_length=1, max_length=200, pattern=NAME_PATTERN, description=description)


def query_name(description: str | None = None) -> Any:
    """An optional query filter naming something."""
    from fastapi import Query

    return Query(max_length=200, pattern=NAME_PATTERN, description=description)


class Me(BaseModel):
    user: str
    name: str
    roles: list[str]
    active: bool
    delegate: str | None
    token_id: str
    scopes: list[str]
