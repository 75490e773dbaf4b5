import json
from pathlib import Path

import pytest

from service.schemas import json_schema

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schema"


@pytest.mark.parametrize("kind", ["process", "org", "calendar", "register", "report"])
def test_published_schema_matches_the_models(kind: str) -> None:
    published = json.loads((DOCS / f"{kind}.schema.json").read_text(encoding="utf-8"))
    assert published == json_schema(kind), f"regenerate: python run.py schema --kind {kind}"


def test_process_schema_forbids_unknown_keys() -> None:
    schema = json_schema("process")
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["StateSpec"]["additionalProperties"] is False
