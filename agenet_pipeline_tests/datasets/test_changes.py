import os

import pytest

from agenet_pipeline.datasets.changes import changed_datasets, folder_fingerprint
from agenet_pipeline_tests.formats import write_jpeg


@pytest.fixture
def root(tmp_path):
    write_jpeg(tmp_path / "a" / "30_0_0_20170101000000000.jpg.chip.jpg")
    write_jpeg(tmp_path / "b.jpg")
    return tmp_path


def test_the_fingerprint_is_stable_and_short(root):
    assert folder_fingerprint(root) == folder_fingerprint(root)
    assert len(folder_fingerprint(root)) == 16


@pytest.mark.parametrize(
    "change",
    [
        lambda root: write_jpeg(root / "a" / "new.jpg"),
        lambda root: (root / "b.jpg").unlink(),
        lambda root: (root / "b.jpg").rename(root / "c.jpg"),
        lambda root: (root / "b.jpg").write_bytes((root / "b.jpg").read_bytes() + b"\0"),
        lambda root: os.utime(root / "b.jpg", ns=(0, 10**9)),  # same size, other modification time
        lambda root: (root / "labels.csv").write_text("file_name,real_age\n"),  # label files count too
    ],
    ids=["added", "removed", "renamed", "rewritten", "touched", "label file"],
)
def test_any_change_of_a_file_changes_the_fingerprint(root, change):
    before = folder_fingerprint(root)
    change(root)
    assert folder_fingerprint(root) != before


@pytest.mark.timeout(20)
def test_a_link_loop_or_a_dangling_link_is_fingerprinted_without_following(root):
    os.symlink(root, root / "a" / "loop", target_is_directory=True)
    os.symlink(root / "gone.jpg", root / "dangling.jpg")
    assert len(folder_fingerprint(root)) == 16


def test_a_missing_root_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        folder_fingerprint(tmp_path / "nowhere")


def test_changed_datasets_are_the_new_and_the_different():
    previous = {"utkface": "1", "adience": "2", "appa_real": "3"}
    current = {"utkface": "1", "adience": "9", "imdb_wiki": "4"}
    assert changed_datasets(previous, current) == ["adience", "imdb_wiki"]
