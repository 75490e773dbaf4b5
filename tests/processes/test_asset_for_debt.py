"""asset_for_debt (第二十条): valuation -> sales head and CFO review -> GM -> finance books it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.errors import ActionNotAllowed, InvalidData
from tests.cli.helpers import Shell

from . import Run, at, cli

D = Decimal
NOW = at("2026-11-02 10:00")


def offer(debt: str = "150000") -> Run:
    return Run.start(
        "asset_for_debt",
        "xu.ming",
        NOW,
        customer="某经销商",
        debt_amount=debt,
        asset_type="vehicle",
        asset_description="冷藏车一辆，2023年购置",
        collection_ref="rc-7",
    )


@pytest.mark.parametrize(
    ("valuation", "offset", "remaining"),
    [("120000", "120000", "30000"), ("150000", "150000", "0"), ("200000", "150000", "0")],
)
def test_the_asset_settles_at_most_the_debt(valuation: str, offset: str, remaining: str) -> None:
    run = offer()
    assert (run.state, run.role) == ("valuation", "finance")
    run.act("deng.ping", "valued", valuation_amount=valuation, valuation_basis="评估报告")
    assert (run.vars["offset_amount"], run.vars["remaining_debt"]) == (D(offset), D(remaining))


def test_valued_reviewed_approved_booked_by_another_finance_person() -> None:
    run = offer()
    with pytest.raises(ActionNotAllowed, match="an asset valued at 0 settles nothing"):
        run.act("deng.ping", "valued", valuation_amount="0", valuation_basis="无")
    run.act("deng.ping", "valued", valuation_amount="120000", valuation_basis="二手车评估报告")
    assert set(run.task.pending_roles) == {"sales_hq_head", "cfo"}
    run.act("qian.hua", "approve").act("guo.yan", "approve")
    assert (run.state, run.role) == ("gm_approval", "general_manager")
    run.act("lin.feng", "approve")
    with pytest.raises(ActionNotAllowed, match="four-eyes rule: deng.ping already acted"):
        run.act("deng.ping", "book", voucher_no="记-1")
    with pytest.raises(InvalidData, match="voucher_no: required"):
        run.act("feng.xue", "book")
    run.act("feng.xue", "book", voucher_no="记-1")
    assert (run.status, run.outcome, run.vars["booked_on"]) == ("completed", "booked", NOW.date())


@pytest.mark.parametrize(
    ("step", "who"),
    [("valuation", "deng.ping"), ("review", "qian.hua"), ("review", "guo.yan"), ("gm", "lin.feng")],
)
def test_every_step_can_refuse(step: str, who: str) -> None:
    run = offer()
    if step != "valuation":
        run.act("deng.ping", "valued", valuation_amount="1000", valuation_basis="x")
    if step == "gm":
        run.act("qian.hua", "approve").act("guo.yan", "approve")
    action = "unacceptable" if step == "valuation" else "reject"
    extra = {"valuation_basis": "无产权证明"} if step == "valuation" else {}
    with pytest.raises(ActionNotAllowed, match="a comment is required"):
        run.act(who, action, **extra)
    run.act(who, action, comment="不同意", **extra)
    assert (run.status, run.outcome) == ("completed", "rejected")


def test_the_requester_never_reviews() -> None:
    from engine.org import Actor

    both = Actor("x.y", frozenset({"branch_manager", "cfo"}))
    run = Run.start(
        "asset_for_debt",
        both,
        NOW,
        customer="c",
        debt_amount="1",
        asset_type="goods",
        asset_description="d",
    )
    run.act("deng.ping", "valued", valuation_amount="1", valuation_basis="b")
    with pytest.raises(ActionNotAllowed, match="four-eyes rule: x.y requested this"):
        run.act(both, "approve")


@pytest.fixture
def sh(db_url: str) -> Shell:
    return cli(db_url, "asset_for_debt")


def test_cli_booked_and_rejected(sh: Shell) -> None:
    inst = sh.js(
        [
            "start",
            "asset_for_debt",
            "--as",
            "liu.yang",
            "--set",
            "customer=某经销商",
            "--set",
            "debt_amount=50000",
            "--set",
            "asset_type=goods",
            "--set",
            "asset_description=库存奶粉200箱",
        ],
    )
    task = inst["tasks"][0]
    assert task["role"] == "finance"
    inst = sh.js(
        f"act {task['id']} valued --as deng.ping --set valuation_amount=45000 "
        "--set valuation_basis=市场价"
    )
    review = inst["tasks"][0]
    assert review["mode"] == "all"
    sh.js(f"act {review['id']} approve --as guo.yan")
    inst = sh.js(f"act {review['id']} approve --as qian.hua")
    inst = sh.js(f"act {inst['tasks'][0]['id']} approve --as lin.feng")
    booking = inst["tasks"][0]["id"]
    sh.refused(f"act {booking} book --as deng.ping --set voucher_no=1", "four-eyes rule")
    done = sh.js(f"act {booking} book --as feng.xue --set voucher_no=记-3")
    assert (done["outcome"], done["variables"]["remaining_debt"]) == ("booked", "5000")

    inst = sh.js(
        [
            "start",
            "asset_for_debt",
            "--as",
            "liu.yang",
            "--set",
            "customer=c",
            "--set",
            "debt_amount=1000",
            "--set",
            "asset_type=other",
            "--set",
            "asset_description=d",
        ],
    )
    done = sh.js(
        [
            "act",
            inst["tasks"][0]["id"],
            "unacceptable",
            "--as",
            "feng.xue",
            "--set",
            "valuation_basis=无法变现",
            "--comment",
            "不宜抵账",
        ]
    )
    assert (done["status"], done["outcome"]) == ("completed", "rejected")
