"""Which channels reach which person for which event.

Personal channels (e-mail, DingTalk and WeCom robots) reach a person only through the
address their ``contacts`` in org.yaml give: no e-mail address, no e-mail. Channels that
address a system or a whole group (webhook, Feishu bot, console) reach everyone routed to
them. ``route:`` in channels.yaml narrows an event to the channels it lists.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.org import Contacts
from notifiers.config import ChannelsConfig, load_channels_file

ENV_VAR = "SHENPI_CHANNELS"
DEFAULT_FILE = "channels.yaml"

# The contact field a channel type needs; types not listed need none.
NEEDS: dict[str, tuple[str, ...]] = {
    "email": ("email",),
    "dingtalk": ("dingtalk", "phone"),
    "wecom": ("wecom",),
}


@dataclass(frozen=True)
class Router:
    """Channel names and types, plus the per-event routes of channels.yaml."""

    types: Mapping[str, str]
    route: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, config: ChannelsConfig) -> Router:
        return cls({n: s.type for n, s in config.channels.items()}, dict(config.route))

    def channels_for(self, event: str, contacts: Contacts) -> list[str]:
        """The channel names that carry ``event`` to a person with these contacts."""
        names = self.route.get(event, tuple(self.types))
        return [n for n in names if _reachable(self.types[n], contacts)]


def _reachable(kind: str, contacts: Contacts) -> bool:
    needed = NEEDS.get(kind)
    return needed is None or any(getattr(contacts, f, None) for f in needed)


def channels_file(option: str | None, processes: Path, env: Mapping[str, str]) -> Path | None:
    """``--channels``, else $SHENPI_CHANNELS, else channels.yaml beside the processes."""
    chosen = option or env.get(ENV_VAR)
    if chosen:
        return Path(chosen)
    default = processes / DEFAULT_FILE
    return default if default.exists() else None


def load(
    option: str | None, processes: Path, env: Mapping[str, str] | None = None
) -> ChannelsConfig | None:
    """The configured channels, or None for "console only". DefinitionError if invalid."""
    env = os.environ if env is None else env
    path = channels_file(option, processes, env)
    return None if path is None else load_channels_file(path, env)
