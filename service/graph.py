"""A process as a Mermaid ``stateDiagram-v2``, for docs and for owners to check the flow."""

from __future__ import annotations

from engine.model import ProcessSpec
from engine.process import RESUBMIT


def _label(text: str) -> str:
    return text.replace('"', "'").replace(":", "：").replace("\n", " ")


def mermaid(spec: ProcessSpec, current: str | None = None) -> str:
    """The diagram; ``current`` (an instance's state) is drawn highlighted, so a person
    sees where the instance stands in the whole flow."""
    # the state of requests sent back to the requester is in every process, not in its file
    spec = spec.model_copy(
        update={"states": {k: v for k, v in spec.states.items() if k != RESUBMIT}}
    )
    lines = ["stateDiagram-v2", f"    %% {spec.process}: {_label(spec.title)}"]
    for name, state in spec.states.items():
        if state.title:
            lines.append(f'    state "{_label(state.title)}" as {name}')
        if state.route:
            lines.append(f"    state {name} <<choice>>")
    lines.append(f"    [*] --> {spec.start.to}: start")
    for name, state in spec.states.items():
        if state.task:
            task = state.task
            if task.assignees:
                names = [_label(a.describe()) for a in task.assignees]
                single = len(names) == 1 and task.mode.value == "any"
                who = names[0] if single else f"{task.mode.value}: " + ", ".join(names)
            else:
                who = task.role or task.role_from or f"{task.mode.value}: " + ", ".join(task.roles)
            for action_name, action in state.task.actions.items():
                guard = f" [{_label(action.when)}]" if action.when else ""
                lines.append(f"    {name} --> {action.to}: {action_name} ({who}){guard}")
        for branch in state.route:
            guard = _label(branch.when) if branch.when else "otherwise"
            lines.append(f"    {name} --> {branch.to}: {guard}")
        if state.deadline is not None:
            dl = state.deadline
            lines.append(f"    note right of {name}: due in {_label(str(dl.amount))} {dl.unit}")
            for level, esc in enumerate(dl.escalations, start=1):
                if esc.goto:
                    lines.append(f"    {name} --> {esc.goto}: overdue, escalation level {level}")
        for spawn in state.spawn:  # linked processes started on entering the state
            each = f" for each of {_label(spawn.for_each)}" if spawn.for_each else ""
            waits = ", waits for them" if spawn.wait else ""
            lines.append(f"    note right of {name}: starts {spawn.process}{each}{waits}")
        if state.final:
            lines.append(f"    {name} --> [*]")
    if spec.deadline is not None:
        dl = spec.deadline
        until = ", ".join(dl.until)
        amount = _label(str(dl.amount))
        lines.append(
            f"    note left of {spec.start.to}: instance deadline {amount} {dl.unit} until {until}"
        )
        for level, esc in enumerate(dl.escalations, start=1):
            if esc.goto:
                lines.append(
                    f"    {spec.start.to} --> {esc.goto}: overdue, escalation level {level}"
                )
    if current is not None and current in spec.states:
        lines.append("    classDef current fill:#fde68a,stroke:#b45309,stroke-width:3px")
        lines.append(f"    class {current} current")
    return "\n".join(lines) + "\n"
