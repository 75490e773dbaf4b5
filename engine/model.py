"""The typed, frozen shape of a process definition file (what ``run.py schema`` publishes).

Only structure lives here; cross-references (targets exist, roles exist, guards compile,
every state reachable) are checked in ``engine.process`` where every problem is collected.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema, field_validator, model_validator

from engine.assignees import Assignee, IfNone
from engine.calendarspec import ClockTime
from engine.validation import Frozen
from engine.values import VarType

NAME = r"^[a-z][a-z0-9_]{0,63}$"


class VariableSpec(Frozen):
    """A process variable. Every value an instance holds is declared and typed."""

    type: VarType
    title: str = ""
    description: str = ""
    values: tuple[str, ...] = Field(default=(), description="Allowed values of an enum.")
    min: Decimal | None = Field(default=None, description="Inclusive lower bound (numbers).")
    max: Decimal | None = Field(default=None, description="Inclusive upper bound (numbers).")
    default: Any = Field(default=None, description="Value when not given at start.")
    confidential: bool = Field(
        default=False,
        description="Hidden from everyone but the requester and the roles in `confidential_to`.",
    )
    live: str | None = Field(
        default=None,
        description="Expression computed whenever the instance is shown, as of that moment "
        "(e.g. a late fee accruing per day); not stored unless a step `set`s it.",
    )

    @model_validator(mode="after")
    def _enum_values(self) -> VariableSpec:
        if self.type is VarType.enum and not self.values:
            raise ValueError("an enum variable needs 'values'")
        if self.type is not VarType.enum and self.values:
            raise ValueError("'values' is only for enum variables")
        return self


class Duration(Frozen):
    """A length of time in one unit; the amount is a number or an expression giving one."""

    working_days: int | str | None = Field(
        default=None, description="Working days (Civil Code counting, calendar of the process)."
    )
    days: int | str | None = Field(
        default=None, description="Calendar days; a last day that is a holiday moves on."
    )
    hours: Decimal | int | str | None = Field(default=None, description="Elapsed hours.")

    @model_validator(mode="after")
    def _one_unit(self) -> Duration:
        given = [u for u in ("working_days", "days", "hours") if getattr(self, u) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of working_days, days or hours")
        return self

    @property
    def unit(self) -> str:
        return next(u for u in ("working_days", "days", "hours") if getattr(self, u) is not None)

    @property
    def amount(self) -> int | Decimal | str:
        return getattr(self, self.unit)


Clock = Annotated[
    ClockTime,  # the calendar file's "HH:MM" rule, one reading of a time of day
    WithJsonSchema({"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d$"}),
]
AT = (
    'Local time of day ("HH:MM", process calendar\'s zone) on the day the days or working '
    "days give, instead of close of business / the same time as the deadline."
)


def _whole_days(dur: Duration | None, what: str) -> None:
    """``at`` picks a time on a day, so the duration must count days, not elapsed hours."""
    if dur is None or dur.unit == "hours":
        raise ValueError(f"'at' needs {what} in days or working_days (hours are a time already)")


class ReassignTarget(Frozen):
    """Who an escalation hands the open task to: one of a role, a named user, or a person
    relative to the task (the manager of whoever it waits for, or of the requester)."""

    role: str | None = Field(default=None, description="Any holder of this role.")
    user: str | None = Field(default=None, description="This user (their delegate if away).")
    manager_of: Literal["approver", "requester"] | None = Field(
        default=None,
        description="`approver`: the manager (org.yaml) of each person the task waits for "
        "(holders of a role slot); `requester`: the requester's manager.",
    )

    @model_validator(mode="after")
    def _one(self) -> ReassignTarget:
        given = [k for k in ("role", "user", "manager_of") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("reassign needs exactly one of role, user or manager_of")
        return self


class Escalation(Frozen):
    """One escalation level, fired ``after`` the deadline (at the deadline if omitted)."""

    after: Duration | None = None
    at: Clock | None = Field(default=None, description=AT)
    notify: tuple[str, ...] = Field(default=(), description="Roles to notify.")
    reassign: str | ReassignTarget | None = Field(
        default=None,
        description="Who the open task goes to: a role id, or {role: R}, {user: U}, "
        "{manager_of: approver|requester}. Countersignatures already given are kept; only "
        "the people still awaited are replaced (or joined, see keep_original).",
    )
    keep_original: bool = Field(
        default=True,
        description="With reassign: the people the task waited for may still act beside the "
        "new assignee (false: the new assignee alone).",
    )
    goto: str | None = Field(
        default=None, description="State the instance moves to (the open task is cancelled)."
    )

    @model_validator(mode="after")
    def _does_something(self) -> Escalation:
        if not (self.notify or self.reassign or self.goto):
            raise ValueError("an escalation needs notify, reassign or goto")
        if self.at is not None:
            _whole_days(self.after, "'after'")
        return self

    @property
    def target(self) -> ReassignTarget | None:
        """``reassign`` in one shape: a plain role id is ``{role: ID}``."""
        if isinstance(self.reassign, str):
            return ReassignTarget(role=self.reassign)
        return self.reassign


class Reminder(Frozen):
    """A reminder ``before`` the deadline.

    ``hours``/``days`` without ``at``: that much elapsed time before the due time (days
    of 24 h). ``working_days``: on the N-th working day before the deadline's day, at the
    deadline's own time of day. With ``at``: on that day (N calendar or working days
    before the deadline's day) at ``at``, local time.
    """

    before: Duration
    at: Clock | None = Field(default=None, description=AT)

    @model_validator(mode="after")
    def _days_for_at(self) -> Reminder:
        if self.at is not None:
            _whole_days(self.before, "'before'")
        return self

    @property
    def on_a_day(self) -> bool:
        """Counted in days on the calendar (not elapsed time before the due instant)."""
        return self.at is not None or self.before.unit == "working_days"


class DeadlineSpec(Duration):
    """A deadline with its reminders and escalation levels."""

    at: Clock | None = Field(
        default=None,
        description='Local time of day ("HH:MM") on the last day of the period, instead of '
        "close of business (days or working_days only).",
    )
    title: str = ""
    from_: str | None = Field(
        default=None,
        alias="from",
        description="Expression giving the event the period counts from (a date or time); "
        "default: entering the state (or starting the instance).",
    )
    reminders: tuple[Reminder, ...] = ()
    escalations: tuple[Escalation, ...] = ()

    @model_validator(mode="after")
    def _days_for_at(self) -> DeadlineSpec:
        if self.at is not None:
            _whole_days(self, "the deadline")
        return self


class SlaSpec(DeadlineSpec):
    """An instance-wide deadline, from start until one of ``until`` states is reached."""

    until: tuple[str, ...] = Field(description="States that stop the clock (the answer given).")
    paused_in: tuple[str, ...] = Field(
        default=(), description="States in which the clock stops (e.g. waiting on the customer)."
    )


class ExtendSpec(Frozen):
    """An action that extends the instance deadline, with caps (petition: once, <= 30 days)."""

    by: Duration
    max_times: int = Field(default=1, ge=1)
    max_total: Decimal | int | None = Field(
        default=None, description="Cap on all extensions together, in the unit of `by`."
    )


class ScheduleSpec(Frozen):
    """A recurring start of this process (cron or a fixed interval), fired once per slot."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    cron: str | None = Field(default=None, description="Five-field cron, in the calendar's zone.")
    every: Duration | None = Field(default=None, description="Fixed interval (days or hours).")
    anchor: str | None = Field(
        default=None, description="With `every`: first slot, ISO 8601 (default 2026-01-01 00:00)."
    )
    requester: str = Field(alias="as", description="User id that starts the instances.")
    set: dict[str, Any] = Field(default_factory=dict, description="Start variables.")

    @model_validator(mode="after")
    def _one_trigger(self) -> ScheduleSpec:
        if (self.cron is None) == (self.every is None):
            raise ValueError("a schedule needs exactly one of cron or every")
        if self.every is not None and self.every.unit == "working_days":
            raise ValueError("'every' takes days or hours")
        return self


class CommentRule(StrEnum):
    optional = "optional"
    required = "required"


class Inputs(Frozen):
    """What a person must or may supply with a step (start or an action)."""

    require: tuple[str, ...] = Field(
        default=(), description="Variables that must have a value after this step's input."
    )
    accept: tuple[str, ...] = Field(
        default=(), description="Variables the actor may also set with this step."
    )
    require_when: dict[str, str] = Field(
        default_factory=dict,
        description="Conditionally required variables: name -> guard expression. When the "
        "guard, evaluated after this step's input, is true the variable must have a value, "
        "as with `require`.",
    )
    set: dict[str, str] = Field(
        default_factory=dict,
        description="Computed variables: name -> expression, evaluated in order after input.",
    )


class StartSpec(Inputs):
    """Who may start an instance, with what input, and where it begins."""

    roles: tuple[str, ...] = Field(default=(), description="Roles that may start; empty = anyone.")
    to: str = Field(description="The first state.")
    when: str | None = Field(
        default=None,
        description="Guard checked after the input and `set` (e.g. a register read): false "
        "refuses the start, nothing is stored.",
    )
    when_message: str | None = Field(
        default=None, description="The one-line reason given when `when` refuses the start."
    )


class ActionSpec(Inputs):
    """An action a task offers: its target state, its guard and its input."""

    title: str = ""
    to: str
    when: str | None = Field(default=None, description="Guard expression; must be true.")
    when_message: str | None = Field(
        default=None, description="What to tell the actor when the guard is false."
    )
    comment: CommentRule = CommentRule.optional
    extend: ExtendSpec | None = Field(default=None, description="This action extends a deadline.")


class TaskMode(StrEnum):
    any = "any"  # 或签: one holder of any listed role
    all = "all"  # 会签: one person per listed role, in any order
    sequence = "sequence"  # 依次: one person per listed role, in the listed order


class TaskSpec(Frozen):
    """A human task: who acts (a role, several, or an expression giving one) and how."""

    title: str = ""
    description: str = ""
    role: str | None = Field(default=None, description="The role that acts.")
    role_from: str | None = Field(
        default=None, description="Expression giving the role id at the moment the task opens."
    )
    roles: tuple[str, ...] = Field(default=(), description="Several roles (with mode).")
    assignees: tuple[Assignee, ...] = Field(
        default=(),
        description="Who acts, relative to the instance (the requester's manager, a "
        "department's head, a role in the requester's department, a user variable...), "
        "resolved when the task opens; with mode, one slot per entry.",
    )
    if_none: tuple[IfNone, ...] = Field(
        default=(),
        description="When an assignee finds nobody: manager_up, {role: R}, skip or "
        "{skip: ACTION}, tried in order. Default: the process's if_none.",
    )
    auto_approve_repeat: bool = Field(
        default=False,
        description="With assignees: when the only person found is the one who just "
        "approved the step before, the system approves this one too (audited), instead of "
        "asking them twice. Never where four-eyes keeps earlier approvers out.",
    )
    mode: TaskMode = TaskMode.any
    countersign: str | None = Field(
        default=None,
        description="The agreeing action. With mode all/sequence: the action every role must "
        "take before the task moves on; any other action decides at once (e.g. reject). In "
        "any mode it is also what signers added to the task (add-signer) take to agree. "
        "Default outside all/sequence: `approve` if the task has it.",
    )
    four_eyes: bool | Literal["requester"] | None = Field(
        default=None,
        description="true: neither the requester nor anyone who acted earlier in this "
        "instance may act; 'requester': only the requester is kept out; false: no rule. "
        "Default: the process's four_eyes.",
    )
    actions: dict[str, ActionSpec]

    @property
    def agree(self) -> str | None:
        """The action that counts as agreement: it passes a countersign or an added
        signer's turn; any other action by someone whose turn it is decides the task."""
        if self.countersign is not None:
            return self.countersign
        return "approve" if "approve" in self.actions else None

    @field_validator("if_none", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | dict) else value

    @model_validator(mode="after")
    def _who(self) -> TaskSpec:
        kinds = (self.role, self.role_from, self.roles, self.assignees)
        given = sum(x is not None and x != () for x in kinds)
        if given != 1:
            raise ValueError(
                "a task needs exactly one of 'role', 'role_from', 'roles' or 'assignees'"
            )
        if self.mode is not TaskMode.any and not (self.roles or self.assignees):
            raise ValueError(
                f"mode {self.mode.value!r} needs 'roles' or 'assignees' (one person per entry)"
            )
        if self.if_none and not self.assignees:
            raise ValueError("'if_none' is only for 'assignees'")
        if self.auto_approve_repeat and not self.assignees:
            raise ValueError("'auto_approve_repeat' is only for 'assignees'")
        if self.mode is not TaskMode.any and self.countersign is None:
            raise ValueError(f"mode {self.mode.value!r} needs 'countersign': the shared action")
        if self.mode is not TaskMode.any and len(set(self.roles)) != len(self.roles):
            raise ValueError("each role can be listed once")
        return self


class RouteSpec(Frozen):
    """One branch of an automatic routing state; the first true `when` wins."""

    to: str
    when: str | None = Field(default=None, description="Guard; omit on the last (otherwise).")


class DecideSpec(Frozen):
    """Evaluate a decision table on entering a state; its outputs become variables."""

    table: str
    inputs: dict[str, str] = Field(
        default_factory=dict,
        description="Table input -> expression. Inputs not listed are read from the variable "
        "with the same name.",
    )


class CcSpec(Frozen):
    """One reader to copy (抄送): a named user, every holder of a role, or the user held in a
    ``type: user`` variable. Readers are told and may ``show`` the instance; they never act."""

    user: str | None = Field(default=None, description="A user id of org.yaml.")
    role: str | None = Field(
        default=None, description="Every holder of this role (an absent one's delegate instead)."
    )
    variable: str | None = Field(
        default=None, description="A `type: user` variable: the user it holds at that moment."
    )

    @model_validator(mode="after")
    def _one(self) -> CcSpec:
        if sum(x is not None for x in (self.user, self.role, self.variable)) != 1:
            raise ValueError("a cc entry needs exactly one of 'user', 'role' or 'variable'")
        return self


class WithdrawSpec(Frozen):
    """When the requester may take an active request back (撤回).

    Default (no ``withdraw:`` key): allowed in every state until the instance is decided,
    as DingTalk and Feishu allow the requester to withdraw a pending request.
    """

    allowed: bool = Field(default=True, description="false: requests cannot be withdrawn.")
    in_states: tuple[str, ...] = Field(
        default=(), description="Only while the instance is in one of these states (empty: any)."
    )
    until_first_approval: bool = Field(
        default=False,
        description="Only until someone other than the requester has acted on the instance.",
    )


class RegisterWriteSpec(Frozen):
    """One register row a state writes on entry (after its `decide` and `set`)."""

    name: str = Field(alias="register", description="The register (listed in `registers.write`).")
    key: str = Field(description="Expression giving the row's key.")
    set: dict[str, str] = Field(
        description="Field -> expression. Fields not named keep their value (a new row: "
        "the field's default, else none)."
    )


class RegistersUse(Frozen):
    """The registers a process reads and writes (writing implies reading)."""

    read: tuple[str, ...] = Field(default=(), description="Registers its expressions read.")
    write: tuple[str, ...] = Field(
        default=(),
        description="Registers its states write; the register must list this process "
        "in its `writers`.",
    )


class SpawnAs(Frozen):
    """A spawned child's requester named outright: a user of org.yaml, or the user held
    in a ``type: user`` variable of the parent."""

    user: str | None = Field(default=None, description="A user id of org.yaml.")
    variable: str | None = Field(
        default=None, description="A `type: user` variable of the parent: the user it holds."
    )

    @model_validator(mode="after")
    def _one(self) -> SpawnAs:
        if (self.user is None) == (self.variable is None):
            raise ValueError("'as' needs exactly one of 'user' or 'variable'")
        return self


class ParentEnd(StrEnum):
    keep = "keep"  # the child runs on when its parent ends
    cancel = "cancel"  # the child is cancelled when its parent ends or leaves the state


MAX_SPAWN = 1000  # children one step may start: a register of customers, not a mail merge


class SpawnSpec(Frozen):
    """Start other processes on entering a state (linked processes, see the YAML reference).

    Each child gets its own instance, with its start input mapped from the parent's
    expressions, and records its parent (and the parent its children). ``wait: true``
    holds the parent's route state until every waited child has finished.
    """

    process: str = Field(pattern=NAME, description="The process to start (its latest version).")
    requester: Literal["requester", "actor"] | SpawnAs = Field(
        default="actor",
        alias="as",
        description="Who the child's requester is: `requester` (the parent's), `actor` (who "
        "took the step; the parent's requester when the system moved it), {user: ID} or "
        "{variable: V} (a `type: user` variable).",
    )
    set: dict[str, str] = Field(
        default_factory=dict,
        description="The child's start input: child variable -> expression over the parent "
        "(and `item` with for_each).",
    )
    for_each: str | None = Field(
        default=None,
        description=f"Expression giving a list: one child per item (`item` in set/when); "
        f"at most {MAX_SPAWN} children per step.",
    )
    when: str | None = Field(
        default=None, description="Guard per item (or for the one child): false skips it."
    )
    wait: bool = Field(
        default=False,
        description="true: the (route) state holds until every waited child has finished "
        "(completed, withdrawn or cancelled); its route then sees `children`.",
    )
    on_parent_end: ParentEnd | None = Field(
        default=None,
        description="keep | cancel: what happens to a child still running when the parent "
        "ends (completed, withdrawn) or leaves the waiting state. Default: cancel when "
        "wait is true, else keep.",
    )

    @property
    def cancels(self) -> bool:
        """Whether the child is cancelled when its parent ends (or leaves the state)."""
        if self.on_parent_end is None:
            return self.wait
        return self.on_parent_end is ParentEnd.cancel


class StateSpec(Frozen):
    """A state: a human task, an automatic route, or a final state."""

    title: str = ""
    description: str = ""
    set: dict[str, str] = Field(
        default_factory=dict, description="Computed on entry: name -> expression."
    )
    decide: tuple[DecideSpec, ...] = Field(
        default=(), description="Decision tables evaluated on entry, before `set`."
    )
    task: TaskSpec | None = None
    route: tuple[RouteSpec, ...] = ()
    deadline: DeadlineSpec | None = Field(
        default=None, description="Deadline for the task of this state, from entering it."
    )
    final: bool = False
    outcome: str | None = Field(
        default=None, description="Result name of a final state (approved, rejected, closed...)."
    )
    cc: tuple[CcSpec, ...] = Field(
        default=(), description="Readers copied (抄送) when an instance enters this state."
    )
    write: tuple[RegisterWriteSpec, ...] = Field(
        default=(),
        description="Register rows written on entering the state, after `decide` and `set`.",
    )

    spawn: tuple[SpawnSpec, ...] = Field(
        default=(),
        description="Processes started on entering this state, after decide/set (linked "
        "processes); with wait: true the state must be a route state.",
    )

    @property
    def waits(self) -> bool:
        """Whether entering this state may hold it until its children have finished."""
        return any(s.wait for s in self.spawn)

    @model_validator(mode="after")
    def _kind(self) -> StateSpec:
        kinds = [k for k, v in (("task", self.task), ("route", self.route)) if v] + (
            ["final"] if self.final else []
        )
        if len(kinds) != 1:
            raise ValueError("a state needs exactly one of 'task', 'route' or 'final: true'")
        if self.outcome is not None and not self.final:
            raise ValueError("'outcome' is only for final states")
        if self.deadline is not None and self.task is None:
            raise ValueError("'deadline' is only for task states")
        if self.waits and not self.route:
            raise ValueError(
                "a spawn with 'wait: true' needs a 'route' state (it holds there until the "
                "children have finished, then takes its route)"
            )
        if self.final and any(s.cancels for s in self.spawn):
            raise ValueError(
                "a final state's spawn cannot cancel on parent end (the parent ends at once): "
                "use on_parent_end: keep"
            )
        return self


class Resubmit(StrEnum):
    restart = "restart"  # the whole route runs again from start.to
    back = "return"  # straight back to the state that sent it back


class RollbackSpec(Frozen):
    """Sending a request back (退回): from which states, and where a resubmission goes."""

    resubmit: Resubmit = Field(
        default=Resubmit.restart,
        description="When the requester resubmits a request sent back to them: `restart` "
        "runs the whole route again from `start.to`; `return` goes straight back to the "
        "state that sent it back.",
    )
    allowed_from: tuple[str, ...] | None = Field(
        default=None,
        description="Task states whose task may be sent back; default: every task state; "
        "[] turns sending back off.",
    )
    to_start: bool = Field(
        default=True, description="Whether a request may be sent back to the requester."
    )


class ProcessSpec(Frozen):
    """A process definition file."""

    process: str = Field(pattern=NAME, description="The process id (lowercase, a-z0-9_).")
    title: str
    description: str = ""
    calendar: str = Field(default="cn", description="Working-day calendar for deadlines.")
    four_eyes: bool | Literal["requester"] = Field(
        default=False,
        description="Default for tasks: true keeps out the requester and earlier approvers, "
        "'requester' only the requester.",
    )
    if_none: tuple[IfNone, ...] = Field(
        default=(),
        description="Default for tasks with assignees: what to do when one finds nobody "
        "(manager_up, {role: R}, skip, {skip: ACTION}; tried in order).",
    )

    @field_validator("if_none", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | dict) else value

    confidential_to: tuple[str, ...] = Field(
        default=(), description="Roles allowed to see confidential variables."
    )
    variables: dict[str, VariableSpec] = Field(default_factory=dict)
    deadline: SlaSpec | None = Field(
        default=None, description="Instance-wide deadline (e.g. receipt to answer)."
    )
    schedules: tuple[ScheduleSpec, ...] = ()
    owner_role: str | None = Field(
        default=None,
        description="The role that answers for this process: told when a scheduled run "
        "cannot start (e.g. its `as` user is away with no delegate). Default: `start.roles`.",
    )
    decisions: dict[str, Any] = Field(
        default_factory=dict, description="Decision tables by name (see the YAML reference)."
    )
    withdraw: WithdrawSpec = Field(
        default_factory=WithdrawSpec,
        description="When the requester may withdraw (撤回) an active request; default: "
        "in any state until it is decided.",
    )
    cc: tuple[CcSpec, ...] = Field(
        default=(),
        description="Readers copied (抄送) when an instance completes (reaches any final state).",
    )
    rollback: RollbackSpec = Field(
        default_factory=RollbackSpec,
        description="Sending back (退回) to an earlier state or to the requester.",
    )
    registers: RegistersUse = Field(
        default_factory=RegistersUse,
        description="Registers this process reads (in expressions) and writes (states' "
        "`write`); see docs/registers.md.",
    )
    start: StartSpec
    states: dict[str, StateSpec]


SchemaKind = Literal["process", "org", "calendar", "register", "report"]
