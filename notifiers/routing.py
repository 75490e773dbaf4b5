"""Which channels reach which person for which event.

E-mail and the DingTalk and WeCom robots reach a person only through the address their
``contacts`` in org.yaml give: no e-mail address, no e-mail (and no mention in the robot's
post). Webhook, Feishu bot and console reach everyone routed to them. Group robots
(``GROUP_TYPES``) get one delivery per notice for all its recipients, the others one per
recipient. ``route:`` in channels.yaml narrows an event to the channels it lists.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import DefinitionError, Problem
from engine.org import Contacts, Org
from engine.yamlsafe import Document
from notifiers.config import ChannelsConfig, config_file, load_channels_file

ENV_VAR = "SHENPI_CHANNELS"
DEFAULT_FILE = "channels.yaml"

# The contact field a channel type needs; types not listed need none.
NEEDS: dict[str, tuple[str, ...]] = {
    "email": ("email",),
    "dingtalk": ("dingtalk", "phone"),
    "wecom": ("wecom",),
}
# Robots posting into a group chat: one post per notice for all its recipients, not one
# per person (five people escalated to must not become five posts in the same group).
GROUP_TYPES = frozenset({"dingtalk", "wecom", "feishu"})


@dataclass(frozen=True)
class Router:
    """Channel names and types, plus the per-event routes of channels.yaml."""

    types: Mapping[str, str]
    route: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # False for "console only" (no channels.yaml): personal channel choices do not apply
    preferences: bool = True

    @classmethod
    def of(cls, config: ChannelsConfig) -> Router:
        return cls({n: s.type for n, s in config.channels.items()}, dict(config.route))

    def is_group(self, name: str) -> bool:
        """True for a group robot: one delivery per notice, mentioning every recipient."""
        return self.types.get(name) in GROUP_TYPES

    def channels_for(self, event: str, contacts: Contacts) -> list[str]:
        """The channel names that carry ``event`` to a person with these contacts."""
        names = self.route.get(event, tuple(self.types))
        if self.preferences and contacts.channels is not None:
            names = tuple(n for n in names if n in contacts.channels)
        return [n for n in names if _reachable(self.types[n], contacts)]


def check_preferences(org: Org, config: ChannelsConfig | None, doc: Document | None) -> None:
    """Refuse ``contacts.channels`` naming a channel channels.yaml does not define.

    Checked when channels.yaml is loaded (org.yaml alone cannot know the names); ``doc`` is
    org.yaml, for line:col. Without channels.yaml the console carries everything.
    """
    if config is None:
        return
    problems: list[Problem] = []
    for uid, user in org.users.items():
        for i, name in enumerate(user.contacts.channels or ()):
            if name in config.channels:
                continue
            message = (
                f"user {uid!r} prefers channel {name!r}, which channels.yaml does not define; "
                f"use one of: {', '.join(config.channels)}"
            )
            where = ("users", uid, "contacts", "channels", i)
            problems.append(
                doc.problem(where, message) if doc else Problem(org.file, 1, 1, message)
            )
    if problems:
        raise DefinitionError(problems)


def _reachable(kind: str, contacts: Contacts) -> bool:
    needed = NEEDS.get(kind)
    return needed is None or any(getattr(contacts, f, None) for f in needed)


def channels_file(option: str | None, processes: Path, env: Mapping[str, str]) -> Path | None:
    """``--channels``, else $SHENPI_CHANNELS, else channels.yaml beside the processes."""
    return config_file(option, env, ENV_VAR, processes, DEFAULT_FILE)


def load(
    option: str | None, processes: Path, env: Mapping[str, str] | None = None
) -> ChannelsConfig | None:
    """The configured channels, or None for "console only". DefinitionError if invalid."""
    env = os.environ if env is None else env
    path = channels_file(option, processes, env)
    return None if path is None else load_channels_file(path, env)
