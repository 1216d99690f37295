"""Which datasets the Dagster definitions build: those the registry marks `in_pipeline`, and only those."""

from agenet_pipeline.core.datasets import CROSS_SOURCE, DATASETS, EVALUATION_ONLY, PIPELINE_DATASETS
from agenet_pipeline.demo.writers import WRITERS
from agenet_pipeline.pipeline.assets.training import TRAINS_ON
from agenet_pipeline.pipeline.definitions import defs
from agenet_pipeline.pipeline.resources import DatasetRoots

PAPERS_FOUR = {"utkface", "appa_real", "imdb_wiki", "adience"}


def test_a_pipeline_dataset_has_assets_and_a_root_and_a_reader_only_dataset_none():
    assets = {key.to_user_string() for key in defs.get_repository_def().asset_graph.get_all_asset_keys()}
    for name in DATASETS:
        per_dataset = {
            "manifest asset": f"{name}_manifest" in assets,
            "faces asset": f"faces_{name}" in assets,
            "root resource field": name in DatasetRoots.model_fields,
        }
        assert per_dataset == dict.fromkeys(per_dataset, name in PIPELINE_DATASETS), (name, per_dataset)
    assert set(PIPELINE_DATASETS) == PAPERS_FOUR | {"labels_table", "fgnet"}


def test_the_demo_stands_in_for_the_papers_four_datasets_only():
    assert set(WRITERS) == PAPERS_FOUR


def test_every_trainable_dataset_is_trained_on_and_the_others_only_scored():
    trained = set(TRAINS_ON["age_model"][0])
    assert trained == set(PIPELINE_DATASETS) - set(EVALUATION_ONLY)
    assert trained == {"utkface", "appa_real", "imdb_wiki", "labels_table"}
    assert set(TRAINS_ON["preliminary_model"][0]) == trained - {"imdb_wiki"}
    assert set(EVALUATION_ONLY) == {"adience", "fgnet"} and CROSS_SOURCE == ("fgnet",)
