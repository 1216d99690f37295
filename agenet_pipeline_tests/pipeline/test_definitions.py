"""Which datasets the Dagster definitions build: those the registry marks `in_pipeline`, and only those."""

from agenet_pipeline.core.datasets import DATASETS, PIPELINE_DATASETS
from agenet_pipeline.demo.writers import WRITERS
from agenet_pipeline.pipeline.definitions import defs
from agenet_pipeline.pipeline.resources import DatasetRoots


def test_a_pipeline_dataset_has_assets_a_root_and_a_demo_and_a_reader_only_dataset_none():
    assets = {key.to_user_string() for key in defs.get_repository_def().asset_graph.get_all_asset_keys()}
    for name in DATASETS:
        per_dataset = {
            "manifest asset": f"{name}_manifest" in assets,
            "faces asset": f"faces_{name}" in assets,
            "root resource field": name in DatasetRoots.model_fields,
            "demo writer": name in WRITERS,
        }
        assert per_dataset == dict.fromkeys(per_dataset, name in PIPELINE_DATASETS), (name, per_dataset)
    assert set(PIPELINE_DATASETS) == {"utkface", "appa_real", "imdb_wiki", "adience"}
