"""A report as one self-contained HTML file: tables and SVG bar charts, no scripts.

A manager opens it in a browser or receives it by email, offline, so nothing is fetched:
the style is inline and the charts are SVG drawn from the numbers by the template.
Jinja2 autoescapes everything, so process names and handler ids cannot inject markup.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from service.reports import Report, Section

WIDTH = 720
LABEL_WIDTH = 260
BAR_ROOM = WIDTH - LABEL_WIDTH - 60


def _text(value: Any) -> dict[str, Any]:
    if value is None:
        return {"text": "-", "num": False}
    if isinstance(value, Decimal):
        return {"text": format(value, "f"), "num": True}
    if isinstance(value, int):
        return {"text": str(value), "num": True}
    if isinstance(value, datetime):
        return {"text": value.isoformat(timespec="minutes"), "num": False}
    return {"text": str(value), "num": False}


def _bars(section: Section) -> list[dict[str, Any]]:
    if section.chart is None:
        return []
    label, value = section.chart
    points = [(str(r[label]), r[value]) for r in section.rows if r.get(value) is not None]
    if not points:
        return []
    top = max(Decimal(v) for _, v in points) or Decimal(1)
    return [
        {
            "label": name if len(name) <= 40 else name[:37] + "...",
            "value": _text(v)["text"],
            "length": int(Decimal(v) / top * BAR_ROOM) if top > 0 else 0,
        }
        for name, v in points
    ]


def render_html(report: Report, zone: Any) -> str:
    env = Environment(
        loader=PackageLoader("service", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    template = env.get_template("report.html.j2")
    sections = [
        {
            "title": s.title,
            "columns": s.columns,
            "rows": [[_text(_local(r.get(c), zone)) for c in s.columns] for r in s.rows],
            "bars": _bars(s),
        }
        for s in report.sections
    ]
    period = (
        f"{report.since.astimezone(zone).isoformat(timespec='minutes')} to "
        f"{report.until.astimezone(zone).isoformat(timespec='minutes')}"
    )
    return template.render(
        report=report,
        sections=sections,
        period=period,
        generated=report.generated_at.astimezone(zone).isoformat(timespec="minutes"),
        width=WIDTH,
        label_width=LABEL_WIDTH,
    )


def _local(value: Any, zone: Any) -> Any:
    return value.astimezone(zone) if isinstance(value, datetime) else value
