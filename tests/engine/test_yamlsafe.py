from decimal import Decimal

import pytest

from engine.errors import DefinitionError
from engine.yamlsafe import MAX_BYTES, load_file, load_text


def test_floats_are_exact_decimals_and_positions_are_kept() -> None:
    doc = load_text("a: 1\nb:\n  - 30.10\n  - x\n", "f.yaml")
    assert doc.data == {"a": 1, "b": [Decimal("30.10"), "x"]}
    assert doc.where(("b", 0)) == (3, 5)
    assert doc.where(("b", 7, "deeper")) == (2, 1)  # nearest known ancestor


def test_duplicate_keys_are_all_reported() -> None:
    with pytest.raises(DefinitionError, match=r"f.yaml:2:1: duplicate key 'a'") as info:
        load_text("a: 1\na: 2\nb: {c: 1, c: 2}\n", "f.yaml")
    assert len(info.value.problems) == 2


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object/apply:os.system ['echo hacked']\n",
        "a: !!python/name:os.system\n",
        "a: !custom {x: 1}\n",
    ],
)
def test_non_core_tags_are_refused_not_constructed(text: str) -> None:
    with pytest.raises(DefinitionError, match="is not allowed"):
        load_text(text, "evil.yaml")


def test_alias_bomb_is_refused() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(DefinitionError, match="refused"):
        load_text("\n".join(lines) + "\n", "bomb.yaml")


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(DefinitionError, match="nested deeper"):
        load_text("a: " + "[" * 10_000 + "]" * 10_000 + "\n", "deep.yaml")


def test_huge_file_is_refused_before_reading(tmp_path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("w") as fh:
        fh.write("a: '")
        fh.write("x" * (50 * 1024 * 1024))
        fh.write("'\n")
    with pytest.raises(DefinitionError, match=f"larger than {MAX_BYTES}"):
        load_file(big)


def test_syntax_error_has_line_and_column() -> None:
    with pytest.raises(DefinitionError, match=r"s.yaml:3:1: invalid YAML"):
        load_text("a: [1,\n  2\n", "s.yaml")


def test_folded_scalars_have_no_fold_markers() -> None:
    doc = load_text("msg: >-\n  an unsatisfied customer's case\n  is not closed\n", "f.yaml")
    assert doc.data["msg"] == "an unsatisfied customer's case is not closed"
