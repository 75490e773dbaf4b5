"""JSON Schemas of the YAML file kinds, generated from the same models that validate them."""

from __future__ import annotations

from typing import Any


def json_schema(kind: str) -> dict[str, Any]:
    if kind == "org":
        from engine.org import OrgSpec

        model: Any = OrgSpec
    elif kind == "report":
        from engine.reportspec import ReportSpec

        model = ReportSpec
    elif kind == "calendar":
        from engine.calendarspec import CalendarSpec

        model = CalendarSpec
    elif kind == "register":
        from engine.registers import RegisterSpec

        model = RegisterSpec
    else:
        from engine.model import ProcessSpec

        model = ProcessSpec
    schema = model.model_json_schema()
    if kind == "process":
        # decision tables are validated by engine.decisions (with gap/overlap checks); the
        # process model keeps them untyped, so publish their shape here for editors
        from engine.decisions import DecisionTable

        table = DecisionTable.model_json_schema(ref_template="#/$defs/{model}")
        schema.setdefault("$defs", {}).update(table.pop("$defs", {}))
        schema["$defs"]["DecisionTable"] = table
        schema["properties"]["decisions"]["additionalProperties"] = {
            "$ref": "#/$defs/DecisionTable"
        }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"Shenpi {kind} file"
    return schema
