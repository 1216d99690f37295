"""Every step runs the code its run was launched with: a worker started from another version is refused."""

import shutil

from dagster import materialize

from agenet_pipeline.core.code import PACKAGE, code_version, fingerprint
from agenet_pipeline.pipeline.assets.manifests import utkface_manifest
from agenet_pipeline.pipeline.definitions import defs
from agenet_pipeline.pipeline.resources import CODE_TAG, AgeNetHome, DatasetRoots


def test_every_job_tags_its_runs_with_the_code_that_launched_them():
    for job in defs.get_repository_def().get_all_jobs():
        if not job.name.startswith("__"):
            assert job.tags[CODE_TAG] == code_version(), job.name


def test_the_fingerprint_changes_with_any_python_file_and_only_with_them(tmp_path):
    copy = tmp_path / "agenet_pipeline"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert fingerprint(copy) == code_version()
    (copy / "notes.txt").write_text("not code")
    assert fingerprint(copy) == code_version()
    with open(copy / "core" / "ages.py", "a") as source:
        source.write("\n# another version\n")
    assert fingerprint(copy) != code_version()


def _manifest_run(tmp_path, code: str):
    return materialize(
        [utkface_manifest],
        resources={"home": AgeNetHome(path=str(tmp_path / "home")), "dataset_roots": DatasetRoots(demo_images=8)},
        tags={CODE_TAG: code},
        raise_on_error=False,
    )


def test_a_step_running_other_code_than_its_run_was_launched_with_is_refused(tmp_path):
    refused = _manifest_run(tmp_path, "0123456789abcdef")
    assert not refused.success
    [failure] = [e for e in refused.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    message = str(failure.event_specific_data.error)
    assert "CodeVersionMismatch" in message
    assert "launched with agenet_pipeline code 0123456789abcdef" in message and code_version() in message
    assert not (tmp_path / "home" / "manifests" / "utkface.parquet").exists()
    assert _manifest_run(tmp_path, code_version()).success
