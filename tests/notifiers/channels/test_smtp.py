"""E-mail channel against a real aiosmtpd server on loopback."""

from __future__ import annotations

import email
import email.policy
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from notifiers.channels import EmailChannel, Message, Recipient
from notifiers.channels.smtp import message_id
from tests.notifiers.channels.sinks import Mailbox, closed_port, smtp_server

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
ZHAO = Recipient(user_id="zhao.lei", name="赵磊", email="zhao.lei@example.cn")


def note(**kw: object) -> Message:
    base: dict[str, object] = {
        "delivery_id": "n42.zhao-lei.1",
        "recipient": ZHAO,
        "subject": "新任务：坏账核销 #42",
        "text": "请审批坏账核销申请 #42。",
        "html": "<p>请审批<b>坏账核销</b>申请 #42。</p>",
    }
    return Message(**(base | kw))  # type: ignore[arg-type]


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def server(mailbox: Mailbox) -> Iterator[Controller]:
    yield from smtp_server(mailbox)


def channel(server: Controller, **kw: object) -> EmailChannel:
    args: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "mode": "plain",
        "sender": "Shenpi 审批 <shenpi@example.cn>",
        "timeout": 2.0,
        "clock": lambda: NOW,
    }
    return EmailChannel(**(args | kw))  # type: ignore[arg-type]


def test_a_message_arrives_as_multipart_text_and_html_with_an_encoded_subject(
    server: Controller, mailbox: Mailbox
) -> None:
    result = channel(server).send(note())
    assert result.status == "ok", result.detail
    [envelope] = mailbox.messages
    assert envelope.mail_from == "shenpi@example.cn"
    assert envelope.rcpt_tos == ["zhao.lei@example.cn"]
    raw = envelope.content
    subject_line = next(ln for ln in raw.split(b"\r\n") if ln.startswith(b"Subject:"))
    assert b"=?utf-8?" in subject_line.lower()  # RFC 2047, not raw UTF-8 bytes
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "新任务：坏账核销 #42"
    assert parsed.get_content_type() == "multipart/alternative"
    parts = {p.get_content_type(): p.get_content() for p in parsed.iter_parts()}
    assert parts["text/plain"].strip() == "请审批坏账核销申请 #42。"
    assert "<b>坏账核销</b>" in parts["text/html"]
    assert parsed["Message-ID"] == "<shenpi.n42.zhao-lei.1@example.cn>"
    assert parsed["To"].addresses[0].display_name == "赵磊"


def test_a_retry_carries_the_same_message_id(server: Controller, mailbox: Mailbox) -> None:
    mail = channel(server)
    assert mail.send(note()).ok and mail.send(note()).ok
    ids = [
        email.message_from_bytes(e.content, policy=email.policy.default)["Message-ID"]
        for e in mailbox.messages
    ]
    assert ids[0] == ids[1]


def test_ids_that_are_not_a_dot_atom_are_hashed_not_mangled() -> None:
    a, b = message_id("a b", "x.cn"), message_id("a_b", "x.cn")
    assert a != b and " " not in a and a.startswith("<shenpi.") and a.endswith("@x.cn>")


@pytest.mark.parametrize(
    "bad",
    [
        {"subject": "hello\r\nBcc: victim@example.com"},
        {"subject": "hello\nX-Evil: 1"},
        {"recipient": Recipient(user_id="x", email="a@example.cn\r\nBcc: b@example.cn")},
        {"recipient": Recipient(user_id="x", name="Eve\rBcc: b@x", email="a@example.cn")},
    ],
)
def test_line_breaks_in_headers_are_refused_and_nothing_is_sent(
    server: Controller, mailbox: Mailbox, bad: dict[str, object]
) -> None:
    result = channel(server).send(note(**bad))
    assert result.status == "permanent"
    assert "line break" in result.detail
    assert mailbox.messages == []


def test_a_recipient_without_an_address_is_permanent(server: Controller) -> None:
    result = channel(server).send(note(recipient=Recipient(user_id="li.na")))
    assert result.status == "permanent" and "li.na" in result.detail


@pytest.mark.parametrize(
    ("reply", "status"), [("550 no such user", "permanent"), ("451 busy", "transient")]
)
def test_a_refused_recipient_is_classified_by_its_smtp_code(
    server: Controller, mailbox: Mailbox, reply: str, status: str
) -> None:
    mailbox.refuse = reply
    result = channel(server).send(note())
    assert result.status == status
    assert reply.split()[0] in result.detail


def test_nobody_listening_is_transient() -> None:
    mail = EmailChannel(
        host="127.0.0.1", port=closed_port(), mode="plain", sender="s@example.cn", timeout=0.5
    )
    result = mail.send(note())
    assert result.status == "transient" and "connection failed" in result.detail


def test_starttls_against_a_server_without_it_is_permanent(server: Controller) -> None:
    result = channel(server, mode="starttls").send(note())
    assert result.status == "permanent" and "STARTTLS" in result.detail


class Users:
    def __init__(self) -> None:
        self.logins: list[tuple[str, str]] = []

    def __call__(self, server, session, envelope, mechanism, auth_data):  # noqa: ANN001
        assert isinstance(auth_data, LoginPassword)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((user, password))
        good = (user, password) == ("shenpi", "s3cret-pw")
        return AuthResult(success=good, handled=False)  # handled=False: server answers 535


@pytest.fixture
def users() -> Users:
    return Users()


@pytest.fixture
def auth_server(mailbox: Mailbox, users: Users) -> Iterator[Controller]:
    yield from smtp_server(
        mailbox,
        authenticator=users,
        auth_require_tls=False,
        auth_required=True,
        auth_exclude_mechanism=["LOGIN"],  # smtplib retries LOGIN after PLAIN; one suffices
    )


@pytest.mark.filterwarnings("ignore:Requiring AUTH:UserWarning")
def test_login_with_the_configured_account(
    auth_server: Controller, mailbox: Mailbox, users: Users
) -> None:
    mail = channel(auth_server, username="shenpi", password=SecretStr("s3cret-pw"))
    assert mail.send(note()).ok
    assert users.logins == [("shenpi", "s3cret-pw")]
    assert len(mailbox.messages) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH:UserWarning")
def test_a_refused_login_is_permanent_and_never_shows_the_password(
    auth_server: Controller, mailbox: Mailbox
) -> None:
    mail = channel(auth_server, username="shenpi", password=SecretStr("wrong-pw"))
    result = mail.send(note())
    assert result.status == "permanent" and "login refused" in result.detail
    assert "wrong-pw" not in result.detail and "wrong-pw" not in repr(mail)
    assert mailbox.messages == []


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (openssl is in the base image)."""
    openssl = shutil.which("openssl")
    assert openssl, "the TLS tests need the openssl command"
    where = tmp_path_factory.mktemp("tls")
    key, crt = where / "key.pem", where / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return crt, key


def server_tls(cert: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    return context


def trusting(cert: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert[0]))


def test_starttls_upgrades_before_sending(cert: tuple[Path, Path], mailbox: Mailbox) -> None:
    for server in smtp_server(mailbox, tls_context=server_tls(cert), require_starttls=True):
        mail = channel(server, mode="starttls", ssl_context=trusting(cert))
        assert mail.send(note()).ok
    assert len(mailbox.messages) == 1


def test_implicit_tls_and_an_untrusted_certificate(
    cert: tuple[Path, Path], mailbox: Mailbox
) -> None:
    for server in smtp_server(mailbox, ssl_context=server_tls(cert)):
        assert channel(server, mode="ssl", ssl_context=trusting(cert)).send(note()).ok
        refused = channel(server, mode="ssl").send(note())  # system CAs do not know it
        assert refused.status == "permanent" and "certificate" in refused.detail
    assert len(mailbox.messages) == 1


def test_a_server_that_never_greets_is_transient_within_the_timeout() -> None:
    import socket
    import time

    with socket.socket() as silent:  # accepts TCP connections (backlog) but never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        mail = EmailChannel(
            host="127.0.0.1", port=silent.getsockname()[1], mode="plain",
            sender="s@example.cn", timeout=0.3,
        )  # fmt: skip
        started = time.monotonic()
        result = mail.send(note())
    assert result.status == "transient" and "timed out" in result.detail
    assert time.monotonic() - started < 1.5
