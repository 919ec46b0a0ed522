"""The import graph keeps its shape (issue 19): every import runs down the layers named in pyproject.toml
([tool.importlinter]: assembly above the HTTP layer above the gateway core above its parts), and no two
sibling packages or sibling modules import each other. Checked by import-linter, as `lint-imports` runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_imports_run_down_the_layers_and_never_in_a_circle() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout, done.stdout
