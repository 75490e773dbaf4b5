"""Size and work bounds for expressions, checked *before* a value is built.

A guard like ``'a' * 1000000000`` or ``(9**100)**100`` is one short line that allocates
gigabytes or burns seconds inside a single C call, where no timeout can stop it. So every
operation that can make a value much bigger than its inputs (``*``, ``**``, ``+``, ``%``,
``~``, ``range``, growing filters and string methods) first estimates the size of what it
would build and refuses it over the limit. Every value an expression holds therefore stays
below ``MAX_SIZE``, which keeps everything downstream (comparisons, ``str()``, sorting)
cheap as well. Each evaluation also has a total budget (``MAX_WORK``) so that many values
just under the limit (``range(100000) | map('center', 99999) | list``) cannot add up.
"""

from __future__ import annotations

import contextvars
import re
import string
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

MAX_SIZE = 100_000
"""Characters of a text, or items of a list/tuple/dict (counted through nesting)."""
MAX_INT_BITS = 4_096
"""Bits of an integer (about 1,233 decimal digits)."""
MAX_EXPONENT = 100
"""Largest ``**`` exponent."""
MAX_WORK = 1_000_000
"""Characters and items one evaluation may build or walk in total."""


class TooBig(Exception):
    """Raised inside the sandbox; ``Expression`` turns it into ``ExpressionTooBig``.

    Deliberately not a ValueError/TypeError, so that no Jinja filter swallows it.
    """


class _Work:
    __slots__ = ("used",)

    def __init__(self) -> None:
        self.used = 0


_WORK: contextvars.ContextVar[_Work | None] = contextvars.ContextVar(
    "shenpi_expr_work", default=None
)


class budget:
    """``with budget():`` gives one evaluation its own ``MAX_WORK`` allowance."""

    def __enter__(self) -> None:
        self._token = _WORK.set(_Work())

    def __exit__(self, *exc: object) -> None:
        _WORK.reset(self._token)


def charge(amount: int) -> None:
    work = _WORK.get()
    if work is None:
        return
    work.used += amount
    if work.used > MAX_WORK:
        raise TooBig(
            f"builds or walks more than {MAX_WORK:,} characters and items in one evaluation "
            "(the limit); simplify the expression"
        )


def _refuse(what: str, amount: int, limit: int = MAX_SIZE, unit: str = "") -> TooBig:
    unit = unit or ("characters" if what == "text" else "items")
    if what == "list":
        unit = "items and characters"
    return TooBig(
        f"would build a {what} over the limit of {limit:,} {unit} (about {amount:,}); "
        "keep values small (see the limits in docs/yaml-reference.md)"
    )


def size(value: Any, cap: int = MAX_SIZE) -> int:
    """Characters/items of ``value`` counted through nesting; stops counting past ``cap``.

    Every item counts at least 1 (an empty text or list too), so a list of n items is at
    least n.
    Shared sub-lists count each time they appear (``[x, x]`` is twice ``x``), because
    that is what printing or comparing them costs.
    """
    total = 0
    stack: list[Any] = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str | bytes):
            total += len(v) or 1
        elif isinstance(v, list | tuple | set | frozenset):
            if v:
                stack.extend(v)
            else:
                total += 1
        elif isinstance(v, Mapping):
            total += 0 if v else 1
            for k, item in v.items():
                stack.append(k)
                stack.append(item)
        elif isinstance(v, range):
            total += len(v) or 1
        else:
            total += 1
        if total > cap:
            break
    charge(total if total <= cap else cap)
    return total


def text_size(value: Any, cap: int = MAX_SIZE) -> int:
    """An upper bound on ``len(str(value))`` and on any ``format`` of it; stops past ``cap``."""
    total = 0
    stack: list[Any] = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            total += len(v) + 2
        elif isinstance(v, bool) or v is None:
            total += 5
        elif isinstance(v, int):
            total += int_digits(v) + 2
        elif isinstance(v, Decimal):
            if v.is_finite():
                sign, digits, exponent = v.as_tuple()
                total += len(digits) + abs(int(exponent)) + 4
            else:
                total += 9
        elif isinstance(v, float):
            total += 330  # '%f' % 1e308
        elif isinstance(v, list | tuple | set | frozenset):
            total += 2 + 2 * len(v)
            stack.extend(v)
        elif isinstance(v, Mapping):
            total += 2 + 4 * len(v)
            for k, item in v.items():
                stack.append(k)
                stack.append(item)
        elif isinstance(v, range):
            total += 20
        else:
            total += 64  # dates, times and the like print short
        if total > cap:
            break
    charge(min(total, cap))
    return total


def int_digits(value: int) -> int:
    return value.bit_length() * 30103 // 100000 + 1


def check_int(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        bits = value.bit_length()
        if bits > MAX_INT_BITS:
            raise _refuse("number", bits, MAX_INT_BITS, "bits")
    return value


def _int_arg(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float | str):
        return 0
    try:
        return int(value)
    except (ValueError, OverflowError, ArithmeticError):
        raise TooBig(f"{what} {value!r} is not a usable whole number") from None


def produced(value: Any) -> Any:
    """Check a value just built by a filter or call, and charge it to the budget."""
    if isinstance(value, int) and not isinstance(value, bool):
        return check_int(value)
    if isinstance(value, str):
        n = len(value)
        charge(n)
        if n > MAX_SIZE:
            raise _refuse("text", n)
        return value
    if isinstance(value, list | tuple | set | frozenset | Mapping | range | bytes):
        n = size(value)
        if n > MAX_SIZE:
            raise _refuse("list", n)
    return value


def check_text_parts(parts: Any, separator: str = "") -> None:
    """Before joining or concatenating: the text cannot get longer than this bound."""
    parts = list(parts)
    total = len(separator) * max(len(parts) - 1, 0)
    for part in parts:
        total += text_size(part, MAX_SIZE - total + 1) - 2
        if total > MAX_SIZE:
            raise _refuse("text", total)


# ------------------------------------------------------------------------ operators


def _is_seq(v: Any) -> bool:
    return isinstance(v, str | list | tuple)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be over a limit, before computing it."""
    if operator == "*":
        if _is_seq(left) and isinstance(right, int) or _is_seq(right) and isinstance(left, int):
            seq, times = (left, right) if _is_seq(left) else (right, left)
            n = size(seq) * max(int(times), 0)
            if n > MAX_SIZE:
                raise _refuse("text" if isinstance(seq, str) else "list", n)
            charge(n)
        elif _is_int(left) and _is_int(right):
            bits = left.bit_length() + right.bit_length()
            if bits > MAX_INT_BITS:
                raise _refuse("number", bits, MAX_INT_BITS, "bits")
    elif operator == "**":
        numeric = isinstance(right, int | Decimal | float) and not isinstance(right, bool)
        if numeric and abs(right) > MAX_EXPONENT:
            raise TooBig(f"exponent above {MAX_EXPONENT} refused")
        if _is_int(left) and _is_int(right) and right > 0:
            bits = left.bit_length() * right
            if bits > MAX_INT_BITS:
                raise _refuse("number", bits, MAX_INT_BITS, "bits")
    elif operator == "+":
        if _is_seq(left) and _is_seq(right) and type(left) is type(right):
            n = size(left) + size(right)
            if n > MAX_SIZE:
                raise _refuse("text" if isinstance(left, str) else "list", n)
            charge(n)
    elif operator == "%" and isinstance(left, str):
        check_percent_format(left, right)


_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.S)


def check_percent_format(fmt: str, args: Any) -> None:
    """``'%s' % x`` and ``| format``: widths, precisions and repeated arguments add up."""
    widths = 0
    fields = 0
    for width, precision, conversion in _PERCENT.findall(fmt):
        if conversion == "%":
            continue
        if "*" in (width, precision):
            raise TooBig("'*' widths in a format are refused; write the width out")
        widths += int(width or 0) + int(precision or 0)
        fields += 1
    _check_format_total(len(fmt), widths, fields, args)


def check_str_format(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """``'{:>9}'.format(x)``: the same bound as for ``%``."""
    widths = 0
    fields = 0
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # the call itself reports the bad format
    for _literal, field, spec, _conversion in parsed:
        if field is None:
            continue
        spec = spec or ""
        if "{" in spec:
            raise TooBig("nested fields in a format are refused; write the width out")
        widths += sum(int(d) for d in re.findall(r"\d+", spec))
        fields += 1
    _check_format_total(len(fmt), widths, fields, (args, dict(kwargs)))


def _check_format_total(length: int, widths: int, fields: int, args: Any) -> None:
    if widths > MAX_SIZE:
        raise _refuse("text", widths)
    per_field = text_size(args, MAX_SIZE + 1) if fields else 0
    total = length + widths + fields * per_field
    if total > MAX_SIZE:
        raise _refuse("text", total)


# ------------------------------------------------------------------------ filters


def _str_len(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    return text_size(value, MAX_SIZE + 1)


def _check_width(width: Any, s: Any = "") -> None:
    n = max(_int_arg(width, "width"), _str_len(s))
    if n > MAX_SIZE:
        raise _refuse("text", n)


def _check_indent(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> None:
    text = s if isinstance(s, str) else ""
    step = len(width) if isinstance(width, str) else _int_arg(width, "width")
    n = _str_len(s) + (text.count("\n") + 1) * max(step, 0)
    if n > MAX_SIZE:
        raise _refuse("text", n)


def _check_wordwrap(
    s: Any,
    width: Any = 79,
    break_long_words: bool = True,
    wrapstring: Any = None,
    break_on_hyphens: bool = True,
) -> None:
    length = _str_len(s)
    lines = length // max(_int_arg(width, "width"), 1) + length // 2 + 1
    n = length + lines * len(str(wrapstring if wrapstring is not None else "\n"))
    if n > MAX_SIZE:
        raise _refuse("text", n)


def check_replace(s: Any, old: Any, new: Any, count: Any = None) -> None:
    if not isinstance(s, str):
        s = str(s) if _str_len(s) <= MAX_SIZE else ""
    old, new = str(old), str(new)
    hits = s.count(old) if old else len(s) + 1
    if count is not None and _int_arg(count, "count") >= 0:
        hits = min(hits, _int_arg(count, "count"))
    n = len(s) + hits * max(len(new) - len(old), 0)
    if n > MAX_SIZE:
        raise _refuse("text", n)


def _check_fill(value: Any, count: Any, fill_with: Any = None) -> None:
    n = _int_arg(count, "count")
    if n > MAX_SIZE:
        raise _refuse("list", n)


def _check_format_filter(value: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(value, str):
        check_percent_format(value, kwargs or args)


def _check_int_filter(value: Any, *args: Any, **kwargs: Any) -> None:
    too_big = isinstance(value, Decimal) and value.is_finite() and value.adjusted() > 1_233
    if too_big:  # more than MAX_INT_BITS bits once made whole
        raise _refuse("number", value.adjusted() * 332 // 100, MAX_INT_BITS, "bits")


def check_text_input(value: Any, *args: Any, **kwargs: Any) -> None:
    n = _str_len(value)
    if n > MAX_SIZE:
        raise _refuse("text", n)


FILTER_CHECKS = {
    "center": lambda value, width=80: _check_width(width, value),
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "replace": check_replace,
    "batch": lambda value, linecount, fill_with=None: _check_fill(
        value, linecount if fill_with is not None else 0
    ),
    "slice": lambda value, slices, fill_with=None: _check_fill(value, slices),
    "format": _check_format_filter,
    "int": _check_int_filter,
}
"""Filters whose result can outgrow their input: checked on their arguments first."""
TEXT_FILTERS = frozenset(
    {
        "capitalize",
        "e",
        "escape",
        "forceescape",
        "lower",
        "pprint",
        "safe",
        "string",
        "striptags",
        "title",
        "tojson",
        "trim",
        "truncate",
        "upper",
        "urlencode",
        "urlize",
        "wordcount",
        "xmlattr",
    }
)
"""Filters that turn their whole input into text first (``str()`` of a big list)."""


# ------------------------------------------------------------------------ methods


def check_str_method(s: str, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """Bound the string methods that grow; returns args to use (iterables materialised)."""
    if name in ("center", "ljust", "rjust", "zfill") and args:
        _check_width(args[0], s)
    elif name == "expandtabs":
        tab = _int_arg(args[0] if args else kwargs.get("tabsize", 8), "tabsize")
        n = len(s) + s.count("\t") * max(tab, 0)
        if n > MAX_SIZE:
            raise _refuse("text", n)
    elif name == "replace" and len(args) >= 2:
        check_replace(s, *args[:3])
    elif name == "join" and args:
        items = list(bounded_iter(args[0]))
        check_text_parts(items, s)
        return (items, *args[1:])
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        n = len(s) * max(longest, 1)
        if n > MAX_SIZE:
            raise _refuse("text", n)
    return args


def bounded_iter(value: Any) -> Iterator[Any]:
    for i, item in enumerate(value):
        if i >= MAX_SIZE:
            raise _refuse("list", i + 1)
        yield item
