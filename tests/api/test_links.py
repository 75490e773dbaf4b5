"""One-time action links against a real uvicorn server and a real database: GET never
acts, POST acts once, and expired, used or stale links get a 410 page saying why."""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.linktokens import ActionLinks, from_env, link_keys, link_ttl, task_version
from engine.errors import LinkKeyError
from notifiers.outbox import Dispatcher, Outlet
from notifiers.routing import Router
from service.timekeeper import tick
from service.workflow import Workflow
from tests.api.live import (  # noqa: F401 (migrated_sqlite is a fixture)
    Clock,
    database,
    dump,
    make_processes,
    migrated_sqlite,
    serve,
    sqlite_only,
)

KEY = b"k" * 32


@dataclass
class World:
    wf: Workflow
    url: str
    clock: Clock
    links: ActionLinks
    task: str

    def dump(self) -> dict[str, list[str]]:
        return dump(self.wf.store.engine)

    def link(self, user: str = "li.qiang", action: str = "approve", task: str = "") -> str:
        record = self.wf.store.get_task(task or self.task)
        return self.links.make_link(record, user, action, self.clock())


@pytest.fixture
def world(
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    migrated_sqlite: Path,  # noqa: F811
) -> Iterator[World]:
    """The real app (create_app) with its public URL and link key from the environment."""
    procs = make_processes(tmp_path / "processes")
    monkeypatch.setenv("SHENPI_LINK_SECRET", KEY.decode())
    monkeypatch.delenv("SHENPI_LINK_SECRET_FILE", raising=False)
    monkeypatch.delenv("SHENPI_LINK_HOURS", raising=False)
    wf = Workflow.open(database(db_url, tmp_path, migrated_sqlite), procs, create=True)
    clock = Clock()
    wf.clock = clock
    wf.deploy()
    snapshot = wf.start("errand", "wang.fang", {"note": "buy paper"})
    made: list[ActionLinks] = []

    def make_app(url: str) -> FastAPI:
        monkeypatch.setenv("SHENPI_PUBLIC_URL", url)
        made.append(from_env(None) or ActionLinks([], url))
        return create_app(wf)

    try:
        with serve(make_app) as url:
            yield World(wf, url, clock, made[0], snapshot.tasks[0].id)
    finally:
        wf.store.close()


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10)


def post(url: str, comment: str | None = None) -> httpx.Response:
    data = {"comment": comment} if comment is not None else {}
    return httpx.post(url, data=data, timeout=10)


def text(response: httpx.Response) -> str:
    """The page's words, without tags."""
    body = re.sub(r"<style>.*?</style>", " ", response.text, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


@sqlite_only
def test_get_shows_a_confirmation_page_and_never_acts(world: World) -> None:
    link = world.link()
    before = world.dump()
    for _ in range(3):  # a mail scanner, a preview, the person
        page = get(link)
        assert page.status_code == 200
        assert 'method="post"' in page.text
        assert "Confirm" in text(page) and "approve" in text(page)
        assert "李强" in text(page)  # the user the link acts as
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "no-referrer"
    assert world.dump() == before
    assert world.wf.store.get_task(world.task).status == "open"


def test_post_acts_once_and_a_second_use_is_410_saying_what_was_done(world: World) -> None:
    link = world.link()
    done = post(link, "fine by me")
    assert done.status_code == 200, done.text
    task = world.wf.store.get_task(world.task)
    assert (task.status, task.decision, task.decided_by) == ("done", "approve", "li.qiang")
    audit = world.wf.store.audit_page(limit=50).items
    assert any(r["action"] == "approve" and r["data"].get("comment") == "fine by me" for r in audit)
    before = world.dump()
    again = post(link)
    assert again.status_code == 410
    assert "already used" in text(again) and "approve" in text(again)
    assert get(link).status_code == 410
    assert world.dump() == before


@sqlite_only
def test_a_link_after_someone_else_acted_is_410_naming_them(world: World) -> None:
    link = world.link()
    world.wf.act(world.task, "reject", "sun.li", comment="no budget")
    before = world.dump()
    for response in (get(link), post(link)):
        assert response.status_code == 410
        assert "孙丽 (sun.li) chose 'reject'" in text(response)
    assert world.dump() == before


@sqlite_only
def test_a_link_after_reassignment_is_410_and_changes_nothing(world: World) -> None:
    link = world.link()
    # the deadline passes: the escalation moves the task to the service director
    tick(world.wf, world.clock() + timedelta(days=10))
    task = world.wf.store.get_task(world.task)
    assert task.status == "open" and task.roles == ("service_director",)
    before = world.dump()
    response = post(link)
    assert response.status_code == 410
    assert "reassigned" in text(response) and "service_director" in text(response)
    assert world.dump() == before
    # a link made for the new holder works
    fresh = world.link(user="chen.jun")
    assert post(fresh).status_code == 200


@sqlite_only
def test_a_link_after_expiry_is_410_and_changes_nothing(world: World) -> None:
    link = world.link()
    world.clock.advance(timedelta(hours=71, minutes=59))
    assert get(link).status_code == 200
    world.clock.advance(timedelta(minutes=2))
    before = world.dump()
    response = post(link)
    assert response.status_code == 410
    assert "expired" in text(response)
    assert world.dump() == before


@sqlite_only
def test_a_changed_or_foreign_token_is_404_and_changes_nothing(world: World) -> None:
    link = world.link()
    before = world.dump()
    token = link.rsplit("/", 1)[1]
    payload, sig = token.split(".", 1)
    forged = f"{world.url}/a/{payload[:-2]}xy.{sig}"
    other_key = ActionLinks([b"o" * 32], world.url).make_link(
        world.wf.store.get_task(world.task), "li.qiang", "approve", world.clock()
    )
    for url in (forged, other_key, f"{world.url}/a/nothing"):
        assert post(url).status_code == 404
        assert get(url).status_code == 404
    assert world.dump() == before


@sqlite_only
def test_a_required_comment_is_asked_for_and_the_link_stays_usable(world: World) -> None:
    link = world.link(action="reject")
    page = get(link)
    assert "required" in text(page)
    before = world.dump()
    refused = post(link, "   ")
    assert refused.status_code == 422
    assert "A comment is required" in text(refused) and 'method="post"' in refused.text
    assert world.dump() == before  # not even a `denied` entry
    assert post(link, "too expensive").status_code == 200
    assert world.wf.store.get_task(world.task).decision == "reject"


@sqlite_only
def test_someone_without_the_role_gets_403_and_the_link_back(world: World) -> None:
    link = world.link(user="wang.fang")  # a complaint clerk, not a handler
    response = post(link)
    assert response.status_code == 403
    assert world.wf.store.get_task(world.task).status == "open"
    assert post(link).status_code == 403  # not "used": nothing was done with it


def test_two_posts_at_once_act_once(world: World) -> None:
    link = world.link()
    results: list[int] = []

    def use() -> None:
        results.append(post(link).status_code)

    threads = [threading.Thread(target=use) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [410] * 5
    decisions = [r for r in world.wf.store.audit_page(limit=50).items if r["action"] == "approve"]
    assert len(decisions) == 1


# --------------------------------------------------------------------------- notices


class Sink:
    name = "sink"

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def send(self, message: Any) -> Any:
        from notifiers.channels.base import ok

        self.messages.append(message)
        return ok()


def test_notices_carry_one_working_link_per_action_for_each_person_who_may_act(
    world: World,
) -> None:
    sink = Sink()
    outlet = Outlet({"sink": sink}, Router({"sink": "webhook"}), links=world.links)
    Dispatcher(world.wf.store, world.wf.org, outlet).run(world.clock())
    to = {m.recipient.user_id: m for m in sink.messages if m.data.get("task_id") == world.task}
    assert set(to) == {"li.qiang", "sun.li", "zhou.min"}  # the complaint handlers
    message = to["li.qiang"]
    urls = re.findall(r"https?://\S+/a/\S+", message.text)
    assert len(urls) == 2  # approve, reject
    assert [b.title for b in message.card.buttons] == ["approve", "reject"]
    assert f'href="{urls[0]}"' in (message.html or "")
    assert "python run.py act" in message.text  # the CLI lines stay
    assert message.data["links"] == [
        {"action": "approve", "url": urls[0]},
        {"action": "reject", "url": urls[1]},
    ]  # what the webhook channel posts
    # each link is the recipient's own: sun.li's approve link acts as sun.li
    sun_approve = to["sun.li"].card.buttons[0].url
    assert sun_approve != message.card.buttons[0].url
    assert post(sun_approve).status_code == 200
    assert world.wf.store.get_task(world.task).decided_by == "sun.li"
    assert post(message.card.buttons[0].url).status_code == 410


@sqlite_only
def test_without_a_public_url_notices_have_no_links(world: World) -> None:
    sink = Sink()
    outlet = Outlet({"sink": sink}, Router({"sink": "webhook"}))
    Dispatcher(world.wf.store, world.wf.org, outlet).run(world.clock())
    assert sink.messages
    for message in sink.messages:
        assert "/a/" not in message.text and not message.card.buttons
        assert "links" not in message.data
    assert from_env(None, {}) is None


def test_the_link_key_and_lifetime_come_from_the_environment(tmp_path: Path) -> None:
    assert link_keys({"SHENPI_LINK_SECRET": "s" * 20}) == [b"s" * 20]
    with pytest.raises(LinkKeyError, match="at least 16"):
        link_keys({"SHENPI_LINK_SECRET": "short"})
    keys = tmp_path / "keys"
    keys.write_text("# rotated\n" + "n" * 20 + "\n" + "o" * 20 + "\n", encoding="utf-8")
    assert link_keys({"SHENPI_LINK_SECRET_FILE": str(keys)}) == [b"n" * 20, b"o" * 20]
    generated = link_keys({"XDG_STATE_HOME": str(tmp_path / "state")})
    assert generated == link_keys({"XDG_STATE_HOME": str(tmp_path / "state")})  # kept
    assert (tmp_path / "state" / "shenpi" / "link.key").stat().st_mode & 0o077 == 0
    assert link_ttl({}) == timedelta(hours=72)
    assert link_ttl({"SHENPI_LINK_HOURS": "24"}) == timedelta(hours=24)
    with pytest.raises(LinkKeyError, match="SHENPI_LINK_HOURS"):
        link_ttl({"SHENPI_LINK_HOURS": "0"})
    with pytest.raises(LinkKeyError, match="http"):
        from_env("ftp://x", {"SHENPI_LINK_SECRET": "s" * 20})


@sqlite_only
def test_a_link_made_with_the_old_key_still_works_after_a_rotation(world: World) -> None:
    old = ActionLinks([b"o" * 32], world.url)
    task = world.wf.store.get_task(world.task)
    url = old.make_link(task, "li.qiang", "approve", world.clock())
    rotated = ActionLinks([b"n" * 32, b"o" * 32], world.url)  # new signs, old verifies
    assert rotated.read(url.rsplit("/", 1)[1]).user == "li.qiang"
    assert rotated.make_link(task, "li.qiang", "approve", world.clock()) != url
    assert task_version(task) == rotated.read(url.rsplit("/", 1)[1]).version


def test_the_access_log_never_holds_a_whole_link_token(caplog: pytest.LogCaptureFixture) -> None:
    """The server's access log names each path; a link's path is its secret."""
    import logging

    from fastapi import FastAPI

    from api.server import server

    server(FastAPI(), "127.0.0.1", 0)  # installs the redaction on uvicorn's access log
    token = "abcdefghijkl" + "SECRET-REST-OF-THE-TOKEN"
    access = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "POST", f"/a/{token}", "1.1", 200)
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/v1/tasks", "1.1", 200)
    assert "/a/abcdefghijkl..." in caplog.text and "SECRET" not in caplog.text
    assert "GET /v1/tasks" in caplog.text
