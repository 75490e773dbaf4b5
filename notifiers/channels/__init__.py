"""Notification channels: thin, typed senders on smtplib and httpx.

Each channel turns a :class:`Message` into one delivery attempt and returns a
:class:`Delivery` (ok / transient / permanent with a one-line detail); retrying,
routing and rendering belong to the outbox.
"""

from notifiers.channels.base import (
    Button,
    Card,
    Channel,
    Delivery,
    Message,
    Recipient,
    Status,
)
from notifiers.channels.console import ConsoleChannel
from notifiers.channels.dingtalk import DingTalkChannel
from notifiers.channels.feishu import FeishuChannel
from notifiers.channels.ratelimit import RateLimit, RateLimiter
from notifiers.channels.smtp import EmailChannel
from notifiers.channels.webhook import WebhookChannel
from notifiers.channels.wecom import WeComChannel

__all__ = [
    "Button",
    "Card",
    "Channel",
    "ConsoleChannel",
    "Delivery",
    "DingTalkChannel",
    "EmailChannel",
    "FeishuChannel",
    "Message",
    "RateLimit",
    "RateLimiter",
    "Recipient",
    "Status",
    "WeComChannel",
    "WebhookChannel",
]
