import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def on_ci() -> bool:
    """Whether this is a CI run: CI services set CI (to true, 1 or the service's name)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def shared_data(name: str) -> Path:
    """A folder of ../shared/data; where it is absent, a skip on a developer machine and a failure on CI, so that
    the real-data tests never vanish from CI unnoticed."""
    folder = SHARED_DATA / name
    if not folder.is_dir():
        reason = f"{folder} is not here: the real face data sits beside the project on developer machines and CI"
        if on_ci():
            pytest.fail(f"{reason}; CI must provide it (CI is set), or its real-data tests would silently not run")
        pytest.skip(reason)
    return folder


@pytest.fixture
def utkface_part1() -> Path:
    return shared_data("utkface_part1")


@pytest.fixture
def adience_sample() -> Path:
    return shared_data("adience_sample")
