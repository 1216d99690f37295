from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(name: str) -> Path:
    """A folder of ../shared/data, or a skip when this machine does not have it."""
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(
            f"{folder} is not here: the real face data sits beside the project on developer machines and CI only"
        )
    return folder


@pytest.fixture
def utkface_part1() -> Path:
    return shared_data("utkface_part1")


@pytest.fixture
def adience_sample() -> Path:
    return shared_data("adience_sample")


@pytest.fixture
def fgnet() -> Path:
    return shared_data("fgnet")
