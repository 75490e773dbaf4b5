"""channels.yaml: validated with file:line:col, secrets only as references, resolved at load."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from engine.errors import DefinitionError
from notifiers.channels import ConsoleChannel, DingTalkChannel, EmailChannel, WebhookChannel
from notifiers.channels.ratelimit import RateLimit
from notifiers.config import load_channels_file, load_channels_text

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ENV = {
    "SMTP_PASSWORD": "smtp-pw-123",
    "WEBHOOK_SECRET": WHSEC,
    "DINGTALK_TOKEN": "ding-token-abc",
    "DINGTALK_SECRET": "SECding-secret-xyz",
}

GOOD = """\
channels:
  mail:
    type: email
    host: smtp.example.cn
    mode: ssl
    sender: "Shenpi <shenpi@example.cn>"
    username: shenpi
    password: ${SMTP_PASSWORD}
  erp:
    type: webhook
    url: https://erp.example.cn/hooks/shenpi
    secrets:
      - ${WEBHOOK_SECRET}
  ops-group:
    type: dingtalk
    token: ${DINGTALK_TOKEN}
    secret: ${DINGTALK_SECRET}
  audit:
    type: console
"""


def test_a_good_file_loads_and_builds_each_channel() -> None:
    config = load_channels_text(GOOD, "channels.yaml", ENV)
    assert list(config.channels) == ["mail", "erp", "ops-group", "audit"]
    assert config.channels["mail"].effective_port == 465  # ssl's port when none is given
    assert config.channels["mail"].password.get_secret_value() == "smtp-pw-123"
    built = config.build()
    assert isinstance(built["mail"], EmailChannel)
    assert isinstance(built["erp"], WebhookChannel)
    assert isinstance(built["ops-group"], DingTalkChannel)
    assert isinstance(built["audit"], ConsoleChannel)
    assert built["ops-group"].url == "https://oapi.dingtalk.com/robot/send"


def test_robots_default_to_twenty_a_minute_and_owners_may_set_their_own() -> None:
    text = GOOD + "  slow:\n    type: wecom\n    key: ${DINGTALK_TOKEN}\n"
    text += "    rate_limit: {messages: 5, per_seconds: 60}\n"
    config = load_channels_text(text, "channels.yaml", ENV)
    assert config.rate_limit("ops-group") == RateLimit(20, timedelta(minutes=1))
    assert config.rate_limit("slow") == RateLimit(5, timedelta(minutes=1))
    assert config.rate_limit("mail") is None
    assert set(config.limiters()) == {"ops-group", "slow"}


def test_secret_values_never_show_in_repr() -> None:
    config = load_channels_text(GOOD, "channels.yaml", ENV)
    shown = repr(config) + repr(config.build())
    for value in ENV.values():
        assert value not in shown


def test_a_missing_variable_is_one_line_naming_it_and_where() -> None:
    env = {k: v for k, v in ENV.items() if k != "DINGTALK_SECRET"}
    with pytest.raises(DefinitionError) as caught:
        load_channels_text(GOOD, "channels.yaml", env)
    assert str(caught.value) == (
        "channels.yaml:17:5: environment variable DINGTALK_SECRET is not set; "
        "export it before starting"
    )


def test_every_problem_at_once_with_line_and_col_and_no_secret_echoed() -> None:
    text = """\
channels:
  mail:
    type: email
    host: smtp.example.cn
    sender: s@example.cn
    pasword: ${SMTP_PASSWORD}
  hook:
    type: webhook
    url: ftp://x
    secrets: [hunter2-literal]
  robot:
    type: dingtalk
    token: ${NOPE}
  pager:
    type: pagerduty
  Bad Name:
    type: console
"""
    with pytest.raises(DefinitionError) as caught:
        load_channels_text(text, "channels.yaml", ENV)
    lines = str(caught.value).splitlines()
    assert "hunter2" not in str(caught.value)
    assert lines == [
        "channels.yaml:6:5: unknown key 'pasword'",
        "channels.yaml:9:5: value error, must be an http:// or https:// URL",
        "channels.yaml:10:15: a secret must be a ${ENV_VAR} reference or a 'file:' path, never "
        "the secret itself; move it out of this file",
        "channels.yaml:13:5: environment variable NOPE is not set; export it before starting",
        "channels.yaml:15:5: unknown channel type 'pagerduty'; use one of console, email, "
        "webhook, dingtalk, wecom, feishu",
        "channels.yaml:16:3: channel name 'Bad Name' must match ^[a-z][a-z0-9_.-]{0,63}$",
    ]


def test_a_literal_secret_is_refused_without_repeating_it() -> None:
    text = "channels:\n  r:\n    type: wecom\n    key: 693a91f6-real-key\n"
    with pytest.raises(DefinitionError) as caught:
        load_channels_text(text, "channels.yaml", ENV)
    message = str(caught.value)
    assert message.startswith("channels.yaml:4:5: a secret must be a ${ENV_VAR} reference")
    assert "693a91f6-real-key" not in message


def test_a_webhook_secret_must_be_whsec() -> None:
    text = "channels:\n  h:\n    type: webhook\n    url: http://127.0.0.1:9/\n"
    text += "    secrets:\n      - ${WEBHOOK_SECRET}\n      - ${SMTP_PASSWORD}\n"
    with pytest.raises(DefinitionError, match=r"^channels.yaml:7:9: a webhook secret must start"):
        load_channels_text(text, "channels.yaml", ENV)


def test_three_webhook_secrets_are_too_many() -> None:
    text = "channels:\n  h:\n    type: webhook\n    url: http://127.0.0.1:9/\n"
    text += "    secrets: ['${A}', '${A}', '${A}']\n"
    with pytest.raises(DefinitionError, match=r"channels.yaml:5:5: .*at most 2"):
        load_channels_text(text, "channels.yaml", {"A": WHSEC})


def test_file_references_are_read_relative_to_the_yaml(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "wecom.key").write_text("key-from-file\n", encoding="utf-8")
    path = tmp_path / "channels.yaml"
    path.write_text(
        "channels:\n  r:\n    type: wecom\n    key: file:secrets/wecom.key\n"
        "  s:\n    type: wecom\n    key: file:secrets/absent.key\n",
        encoding="utf-8",
    )
    with pytest.raises(DefinitionError) as caught:
        load_channels_file(path, {})
    assert str(caught.value).startswith(f"{path}:7:5: cannot read secret file ")
    path.write_text("channels:\n  r:\n    type: wecom\n    key: file:secrets/wecom.key\n")
    config = load_channels_file(path, {})
    assert config.channels["r"].key.get_secret_value() == "key-from-file"


def test_the_yaml_loader_guards_apply() -> None:
    with pytest.raises(DefinitionError, match=r"channels.yaml:3:3: duplicate key 'a'"):
        load_channels_text(
            "channels:\n  a: {type: console}\n  a: {type: console}\n", "channels.yaml", {}
        )


def test_routes_name_configured_channels_with_line_and_column() -> None:
    text = (
        "channels:\n  audit: {type: console}\nroute:\n  escalated: [audit, service_group_robot]\n"
    )
    with pytest.raises(DefinitionError, match="unknown channel 'service_group_robot'") as caught:
        load_channels_text(text, "channels.yaml", {})
    assert str(caught.value.problems[0]).startswith("channels.yaml:4:")
    ok = load_channels_text(text.replace(", service_group_robot", ""), "channels.yaml", {})
    assert ok.route == {"escalated": ("audit",)}
