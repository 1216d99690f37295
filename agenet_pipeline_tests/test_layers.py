"""The package's floors (pyproject's import-linter contracts): a floor imports only the floors below it, and only
`pipeline` imports Dagster. A change that reaches up fails here."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(config: Path) -> subprocess.CompletedProcess:
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    return subprocess.run(
        [command, "--config", str(config), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_every_floor_imports_only_the_floors_below_it():
    result = lint_imports(ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_an_import_that_reaches_up_breaks_the_contract(tmp_path):
    """The contract can fail: a copy of the package where `core` imports `serving` is refused."""
    copy = tmp_path / "agenet_pipeline"
    shutil.copytree(ROOT / "agenet_pipeline", copy, ignore=shutil.ignore_patterns("__pycache__", "models"))
    ages = copy / "core" / "ages.py"
    ages.write_text(ages.read_text() + "\nfrom agenet_pipeline.serving import cli  # noqa\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    result = subprocess.run(
        [shutil.which("lint-imports", path=str(Path(sys.executable).parent)), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "agenet_pipeline.core.ages -> agenet_pipeline.serving.cli" in result.stdout
