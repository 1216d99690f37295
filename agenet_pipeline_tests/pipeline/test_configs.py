"""The shipped run configs (configs/*.yaml) are valid for every asset job, and a typo in one is an error."""

from pathlib import Path

import pytest
import yaml
from dagster import DagsterInvalidConfigError, validate_run_config

from agenet_pipeline.pipeline.definitions import defs

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
# A file written for full_job serves the jobs of its parts too: data first, then training, with the same file.
ASSET_JOBS = ("full_job", "data_job", "training_job", "exports_job")


def test_the_configs_are_found():
    assert {path.name for path in CONFIGS} >= {"demo.yaml", "real_datasets.yaml"}


@pytest.mark.parametrize("job", ASSET_JOBS)
@pytest.mark.parametrize("path", CONFIGS, ids=[path.name for path in CONFIGS])
def test_a_shipped_config_is_valid_for_every_asset_job(path, job):
    validate_run_config(defs.resolve_job_def(job), yaml.safe_load(path.read_text()))


TYPOS = {
    "an asset that does not exist": {"ops": {"age_modle": {"config": {"input_size": 64}}}},
    "a setting of a training asset": {"ops": {"age_model": {"config": {"input_sise": 64}}}},
    "a setting of a data asset": {"ops": {"faces_utkface": {"config": {"fallback_whole_imag": True}}}},
    "a dataset root": {"resources": {"dataset_roots": {"config": {"utkfac": "/data/UTKFace"}}}},
}


@pytest.mark.parametrize("job", ASSET_JOBS)
@pytest.mark.parametrize("config", TYPOS.values(), ids=TYPOS.keys())
def test_a_typo_is_an_error_for_every_asset_job(config, job):
    with pytest.raises(DagsterInvalidConfigError, match="unexpected config entry"):
        validate_run_config(defs.resolve_job_def(job), config)


def test_a_job_of_part_of_the_assets_gets_only_its_part():
    """data_job with a file that also sets the training: its own assets' config and the resources, unchanged."""
    config = yaml.safe_load((CONFIGS[0].parent / "real_datasets.yaml").read_text())
    config["ops"]["age_model"] = {"config": {"input_size": 64}}
    resolved = validate_run_config(defs.resolve_job_def("data_job"), config)
    assert "age_model" not in resolved["ops"]
    assert resolved["ops"]["imdb_wiki_manifest"]["config"]["sample_size"] == 37000
    assert resolved["resources"]["dataset_roots"]["config"]["utkface"] == "/data/UTKFace"
