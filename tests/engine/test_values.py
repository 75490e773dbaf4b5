"""The value layer refuses what no backend stores the same way, before anything is recorded."""

from __future__ import annotations

import os
import re
from decimal import Decimal

import pytest

from engine.errors import InvalidData
from engine.values import (
    MAX_JSON_DEPTH,
    VarType,
    check_input_names,
    check_name,
    check_text,
    coerce,
    load_json_object,
)

UNDECODABLE = os.fsdecode(b"\xff\xfe")  # what Python makes of these argv bytes


@pytest.mark.parametrize("vtype", [VarType.string, VarType.text, VarType.enum, VarType.user])
@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (UNDECODABLE, "lone surrogate U+DCFF"),
        ("a\ud800", "lone surrogate U+D800 at position 2"),
        ("a\x00b", "control character U+0000 at position 2"),
        ("\x1b[31mred", "control character U+001B"),
        ("a\x7f", "control character U+007F"),
        ("a\x85", "control character U+0085"),
        ("a\rb", "control character U+000D"),
    ],
)
def test_text_with_surrogates_or_control_characters_is_refused(
    vtype: VarType, raw: str, reason: str
) -> None:
    with pytest.raises(InvalidData, match=f"^customer: .*{re.escape(reason)}") as exc:
        coerce("customer", vtype, raw, values=(raw,))
    assert exc.value.field == "customer"
    str(exc.value).encode("utf-8")  # the message itself can be printed and stored


def test_text_keeps_newline_and_tab() -> None:
    assert coerce("note", VarType.text, "a\tb\nc") == "a\tb\nc"
    assert coerce("name", VarType.string, "a\tb") == "a\tb"
    assert coerce("name", VarType.string, "刘女士 😀") == "刘女士 😀"
    with pytest.raises(InvalidData, match="one line of text"):
        coerce("name", VarType.string, "a\nb")


def test_names_allow_no_control_characters_at_all() -> None:
    assert check_name("action", "approve") == "approve"
    for bad in ("a\tb", "a\nb", "\x00", UNDECODABLE):
        with pytest.raises(InvalidData, match="^action: "):
            check_name("action", bad)
    with pytest.raises(InvalidData, match="longer than 200"):
        check_name("task id", "x" * 201)
    with pytest.raises(InvalidData, match="^variable name: .*U\\+0000"):
        check_input_names({"ok": 1, "bad\x00": 2})
    with pytest.raises(InvalidData, match="^comment: .*U\\+DCFF"):
        check_text("comment", UNDECODABLE)


@pytest.mark.parametrize(
    "raw", ["1,5", "1,00,0", "1_000", "1 000", "1.2.3", "¥12", "30%", "--1", "1e", "١٢", "１２"]
)
def test_numbers_are_digits_with_one_optional_point(raw: str) -> None:
    for vtype in (VarType.integer, VarType.decimal, VarType.money, VarType.percent):
        with pytest.raises(InvalidData, match="^amount: expected a number"):
            coerce("amount", vtype, raw)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("15", Decimal("15")),
        (" 1234.50 ", Decimal("1234.50")),
        ("-5", Decimal("-5")),
        ("+0.5", Decimal("0.5")),
        (".5", Decimal("0.5")),
        ("1e3", Decimal("1E+3")),
        ("2.5E-1", Decimal("0.25")),
    ],
)
def test_plain_numbers_and_the_exponent_form_are_read_exactly(raw: str, value: Decimal) -> None:
    assert coerce("amount", VarType.decimal, raw) == value


def test_json_duplicate_keys_are_refused() -> None:
    with pytest.raises(InvalidData, match="^--data f: duplicate key 'kind'"):
        load_json_object('{"kind": "a", "kind": "b"}', "--data f")
    with pytest.raises(InvalidData, match="duplicate key 'x'"):
        load_json_object('{"a": {"x": 1, "x": 2}}', "--data f")


def test_json_depth_is_bounded_without_recursion_errors() -> None:
    deep = "[" * 10_000 + "]" * 10_000
    with pytest.raises(InvalidData, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        load_json_object(deep, "--data f")
    just_over = '{"a": ' + "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + "}"
    with pytest.raises(InvalidData, match="nested deeper"):
        load_json_object(just_over, "--data f")
    at_limit = '{"a": ' + "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1) + "}"
    assert "a" in load_json_object(at_limit, "--data f")


def test_json_numbers_are_exact_and_constants_refused() -> None:
    assert load_json_object('{"a": 0.1, "b": 2}', "d") == {"a": Decimal("0.1"), "b": 2}
    with pytest.raises(InvalidData, match="NaN is not a number"):
        load_json_object('{"a": NaN}', "d")
    with pytest.raises(InvalidData, match="expected a JSON object"):
        load_json_object("[1]", "d")
    with pytest.raises(InvalidData, match="larger than 1000000"):
        load_json_object(" " * 1_000_001, "d")
