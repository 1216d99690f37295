"""The retraining schedule, the dataset-change sensor (on a real instance from the repository's dagster.yaml),
the `gpu` pool and the retry policies."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, build_schedule_context, build_sensor_context, validate_run_config

from agenet_pipeline.pipeline.assets.faces import face_assets
from agenet_pipeline.pipeline.automation import dataset_change_sensor, retraining_schedule, watched_roots
from agenet_pipeline.pipeline.definitions import defs
from agenet_pipeline.pipeline.jobs import TRAINING_ASSETS
from agenet_pipeline.pipeline.sweep import run_trial
from agenet_pipeline_tests.formats import write_jpeg

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    """A Dagster instance with the repository's dagster.yaml (kept under the home: .agenet in the working directory)."""
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(REPOSITORY / "dagster.yaml", home)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(home)
        patch.delenv("AGENET_HOME", raising=False)
        with DagsterInstance.from_config(str(home)) as instance:
            yield instance


@pytest.fixture
def roots(tmp_path, monkeypatch) -> dict:
    """Two configured dataset roots in a run config file named by $AGENET_RUN_CONFIG."""
    utkface, appa_real = tmp_path / "UTKFace", tmp_path / "appa-real-release"
    write_jpeg(utkface / "30_0_0_20170101000000000.jpg.chip.jpg")
    write_jpeg(appa_real / "train" / "000000.jpg")
    config = {
        "resources": {"dataset_roots": {"config": {"utkface": str(utkface), "appa_real": str(appa_real)}}},
        "ops": {"faces_utkface": {"config": {"fallback_whole_image": True}}},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("AGENET_RUN_CONFIG", str(tmp_path / "run.yaml"))
    return {"utkface": utkface, "appa_real": appa_real, "config": config}


def tick(instance, cursor=None):
    context = build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    return dataset_change_sensor.evaluate_tick(context)


def selected(request) -> set[str]:
    return {key.path[0] for key in request.asset_selection}


def test_a_new_file_requests_that_dataset_and_everything_downstream(instance, roots):
    first = tick(instance)
    assert not first.run_requests and "first look" in first.skip_message
    assert not tick(instance, first.cursor).run_requests

    write_jpeg(roots["utkface"] / "31_1_0_20170101000000001.jpg.chip.jpg")
    after = tick(instance, first.cursor)

    [request] = after.run_requests
    everything = {key.path[0] for key in defs.resolve_job_def("full_job").asset_layer.executable_asset_keys}
    others = ("appa_real", "imdb_wiki", "adience", "labels_table", "fgnet")
    other_datasets = {name for d in others for name in (f"{d}_manifest", f"faces_{d}")}
    assert selected(request) == everything - other_datasets
    assert {"faces_utkface", "age_labels", "training_shards", "age_model"} <= selected(request)
    assert request.run_config == roots["config"]
    assert request.tags["agenet/changed_datasets"] == "utkface"
    job = defs.resolve_job_def("full_job").get_subset(asset_selection=set(request.asset_selection))
    validate_run_config(job, request.run_config)  # the request is a run Dagster accepts
    assert not tick(instance, after.cursor).run_requests  # seen once, requested once


def test_changes_in_two_datasets_are_one_run(instance, roots):
    cursor = tick(instance).cursor
    (roots["appa_real"] / "gt_avg_train.csv").write_text("file_name,num_ratings,apparent_age_avg\n")
    (roots["utkface"] / "30_0_0_20170101000000000.jpg.chip.jpg").unlink()

    [request] = tick(instance, cursor).run_requests

    assert {"utkface_manifest", "appa_real_manifest"} <= selected(request)
    assert not {"imdb_wiki_manifest", "adience_manifest", "faces_adience"} & selected(request)
    assert request.tags["agenet/changed_datasets"] == "appa_real,utkface"


def test_the_demo_data_is_not_watched(instance, monkeypatch):
    monkeypatch.delenv("AGENET_RUN_CONFIG", raising=False)
    result = tick(instance)
    assert not result.run_requests and "not watched" in result.skip_message


def test_a_root_that_is_gone_fails_the_tick_naming_it(instance, roots):
    cursor = tick(instance).cursor
    shutil.rmtree(roots["appa_real"])
    with pytest.raises(Exception, match="appa-real-release is not a folder"):
        tick(instance, cursor)


def test_roots_may_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("UTKFACE_ROOT", str(tmp_path))
    config = {"resources": {"dataset_roots": {"config": {"utkface": {"env": "UTKFACE_ROOT"}, "adience": None}}}}
    assert watched_roots(config) == {"utkface": tmp_path}


def test_the_schedule_runs_the_full_job_weekly_with_the_run_config(instance, roots):
    [request] = retraining_schedule.evaluate_tick(build_schedule_context(instance=instance)).run_requests
    assert retraining_schedule.cron_schedule == "0 3 * * 1" and retraining_schedule.job_name == "full_job"
    assert request.run_config == roots["config"]


def test_the_schedule_reads_its_cron_from_the_environment():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from agenet_pipeline.pipeline.automation import retraining_schedule as s; print(s.cron_schedule)",
        ],
        env={"AGENET_RETRAIN_CRON": "30 1 * * *", "PATH": ""},
        check=True,
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip() == "30 1 * * *"


def test_trainings_share_the_gpu_pool_of_one_and_the_sweep_has_its_own(instance):
    assert {a.op.pool for a in TRAINING_ASSETS} == {"gpu"} and run_trial.pool == "training"
    gpu = instance.event_log_storage.get_concurrency_info("gpu")
    assert gpu.limit == 1 and instance.event_log_storage.get_concurrency_info("training").limit == 1


def test_steps_that_can_fail_for_the_machine_retry_and_runs_whose_worker_dies_are_retried(instance):
    # A face asset retries per shard: its shard steps carry the policy.
    shard_ops = [op for a in face_assets for op in a.node_def.node_defs if op.name.startswith("face_shard_")]
    assert len(shard_ops) == len(face_assets)
    assert all(op.retry_policy.max_retries >= 1 for op in [*shard_ops, *(a.op for a in TRAINING_ASSETS)])
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
    assert not instance.run_retries_retry_on_asset_or_op_failure
    assert instance.run_monitoring_enabled  # frees the pool slots of a run whose worker was killed
    assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 60
