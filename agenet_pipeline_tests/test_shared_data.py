"""Tests on the real face data skip on a machine without it, but never on CI: there they fail, naming the folder."""

import pytest

from agenet_pipeline_tests import conftest


@pytest.fixture
def no_shared_data(tmp_path, monkeypatch):
    monkeypatch.setattr(conftest, "SHARED_DATA", tmp_path / "data")
    return tmp_path / "data"


@pytest.mark.parametrize("ci", ["true", "1", "github-actions"])
def test_missing_data_fails_on_ci_with_the_folder_in_the_message(no_shared_data, monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(BaseException) as outcome:  # a skip or a failure: pytest's outcomes are BaseExceptions
        conftest.shared_data("utkface_part1")
    assert outcome.type is pytest.fail.Exception
    assert str(no_shared_data / "utkface_part1") in str(outcome.value) and "CI" in str(outcome.value)


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_missing_data_skips_elsewhere(no_shared_data, monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(BaseException) as outcome:
        conftest.shared_data("utkface_part1")
    assert outcome.type is pytest.skip.Exception and "utkface_part1 is not here" in str(outcome.value)


def test_present_data_is_returned_on_ci(no_shared_data, monkeypatch):
    (no_shared_data / "fgnet").mkdir(parents=True)
    monkeypatch.setenv("CI", "true")
    assert conftest.shared_data("fgnet") == no_shared_data / "fgnet"
