"""The example register and two processes around it, for the register tests only.

``registers/credit_limits.yaml`` is a small credit table; ``set_limit`` writes a
customer's row when the general manager approves it, ``use_limit`` reads it to route an
order. The shipped registers live in processes/registers/ (not these).
"""

from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHIPPED = HERE.parents[1] / "processes"
BOOK = "customer,grade,credit_limit,term_days\nACME,A,100000,30\nBETA,B,5000.50,\n"


def make_processes(folder: Path) -> Path:
    """A processes folder: the shipped org.yaml, the example register and its processes."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SHIPPED / "org.yaml", folder / "org.yaml")
    shutil.copytree(HERE / "registers", folder / "registers")
    for name in ("set_limit.yaml", "use_limit.yaml"):
        shutil.copy(HERE / name, folder / name)
    return folder
