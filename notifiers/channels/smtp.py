"""E-mail over SMTP with the standard library: plain, STARTTLS or implicit TLS, optional auth.

One message per recipient, multipart text + HTML, UTF-8 subjects encoded per RFC 2047 by
``email.policy.SMTP``. The Message-ID is derived from the delivery id, so a retried
delivery carries the same id and mail clients can drop the duplicate.
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import ssl
from email.errors import HeaderParseError
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, parseaddr
from typing import Literal

from pydantic import SecretStr

from notifiers.channels.base import (
    Delivery,
    Message,
    has_line_break,
    ok,
    permanent,
    scrub,
    transient,
)
from notifiers.channels.clock import Clock, utcnow

Mode = Literal["plain", "starttls", "ssl"]

_DOT_ATOM = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


def message_id(delivery_id: str, domain: str) -> str:
    """``<shenpi.{id}@{domain}>``; ids that are not a dot-atom are hashed, never mangled."""
    local = (
        delivery_id
        if _DOT_ATOM.match(delivery_id) and len(delivery_id) <= 64
        else hashlib.sha256(delivery_id.encode("utf-8")).hexdigest()[:40]
    )
    return f"<shenpi.{local}@{domain}>"


def _by_code(code: int, what: str) -> Delivery:
    """SMTP's own rule: 4xx is "try again later", 5xx is "do not retry"."""
    if 400 <= code < 500:
        return transient(f"{what}: SMTP {code}")
    return permanent(f"{what}: SMTP {code}")


class EmailChannel:
    def __init__(
        self,
        *,
        name: str = "email",
        host: str,
        port: int,
        sender: str,
        mode: Mode = "starttls",
        username: str | None = None,
        password: SecretStr | None = None,
        timeout: float = 10.0,
        message_id_domain: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.sender = sender
        self.mode = mode
        self.username = username
        self._password = password
        self.timeout = timeout
        self.envelope_from = parseaddr(sender)[1]
        domain = self.envelope_from.rpartition("@")[2]
        self.message_id_domain = message_id_domain or domain or "shenpi.invalid"
        self.ssl_context = ssl_context
        self.clock = clock

    def __repr__(self) -> str:
        where = f"host={self.host!r}, port={self.port}, mode={self.mode!r}"
        return f"EmailChannel(name={self.name!r}, {where})"

    def build(self, message: Message) -> EmailMessage | Delivery:
        """The MIME message, or a permanent failure if it must not be sent as asked."""
        to = message.recipient.email
        if not to:
            return permanent(f"recipient {message.recipient.user_id!r} has no e-mail address")
        if has_line_break(message.subject, to, message.recipient.name, self.sender):
            return permanent("a line break in the subject or an address header: refused")
        mail = EmailMessage(policy=SMTP)
        try:
            mail["Subject"] = message.subject
            mail["From"] = self.sender
            mail["To"] = formataddr((message.recipient.name, to)) if message.recipient.name else to
            mail["Date"] = format_datetime(self.clock())
            mail["Message-ID"] = message_id(message.delivery_id, self.message_id_domain)
            mail.set_content(message.text or message.body_markdown)
            if message.html:
                mail.add_alternative(message.html, subtype="html")
        except (ValueError, IndexError, HeaderParseError) as exc:
            return permanent(f"cannot build the e-mail: {exc}")
        return mail

    def send(self, message: Message) -> Delivery:
        built = self.build(message)
        if isinstance(built, Delivery):
            return built
        to = str(message.recipient.email)
        secret = self._password.get_secret_value() if self._password else ""
        return scrub(self._deliver(built, to, secret), [secret])

    def _deliver(self, mail: EmailMessage, to: str, password: str) -> Delivery:
        context = self.ssl_context or ssl.create_default_context()
        try:
            if self.mode == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                if self.mode == "starttls":
                    smtp.starttls(context=context)
                if self.username:
                    smtp.login(self.username, password)
                refused = smtp.send_message(mail, from_addr=self.envelope_from, to_addrs=[to])
        except smtplib.SMTPNotSupportedError as exc:
            return permanent(f"server does not support what this channel needs: {exc}")
        except smtplib.SMTPRecipientsRefused as exc:
            code = next(iter(exc.recipients.values()), (550, b""))[0]
            return _by_code(code, "recipient refused")
        except smtplib.SMTPAuthenticationError as exc:
            return permanent(f"login refused: SMTP {exc.smtp_code}")
        except smtplib.SMTPResponseException as exc:
            return _by_code(exc.smtp_code, type(exc).__name__)
        except smtplib.SMTPServerDisconnected as exc:
            return transient(f"server disconnected: {exc}")
        except ssl.SSLCertVerificationError as exc:
            return permanent(f"TLS certificate not trusted: {exc.verify_message}")
        except TimeoutError:
            return transient(f"timed out after {self.timeout:g} s")
        except smtplib.SMTPException as exc:
            return permanent(f"{type(exc).__name__}: {exc}")
        except OSError as exc:
            return transient(f"connection failed: {exc}")
        if refused:
            code = next(iter(refused.values()))[0]
            return _by_code(code, "recipient refused")
        return ok(f"accepted by {self.host}")
