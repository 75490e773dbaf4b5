"""Drive ``run.py`` in-process (fast) with the same parsing, exit codes and output as a shell."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from service.cli import cli

PROCESSES = Path(__file__).resolve().parents[2] / "processes"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Shell:
    """``sh("start x --as y")`` runs ``python run.py --db URL --processes DIR start x --as y``."""

    def __init__(self, db_url: str, processes: Path = PROCESSES) -> None:
        self.base = ["--db", db_url, "--processes", str(processes)]
        self.runner = CliRunner()

    def __call__(self, command: str | list[str], now: str | None = None) -> Result:
        args = shlex.split(command) if isinstance(command, str) else command
        extra = ["--now", now] if now else []
        res = self.runner.invoke(cli, [*self.base, *extra, *args], catch_exceptions=False)
        return Result(res.exit_code, res.stdout, res.stderr)

    def ok(self, command: str | list[str], now: str | None = None) -> Result:
        res = self(command, now)
        assert res.code == 0, f"{command}: exit {res.code}\n{res.err}\n{res.out}"
        return res

    def js(self, command: str | list[str], now: str | None = None) -> Any:
        return self.ok(
            [*(shlex.split(command) if isinstance(command, str) else command), "-o", "json"], now
        ).json()

    def refused(self, command: str | list[str], match: str, now: str | None = None) -> Result:
        res = self(command, now)
        assert res.code == 1, f"{command}: expected exit 1, got {res.code}\n{res.out}\n{res.err}"
        lines = res.err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in res.err, res.err
        assert match in res.err, res.err
        return res
