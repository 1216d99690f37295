"""The jobs: the data assets, the training and evaluation assets, everything, and the hyperparameter sweep.

One run config serves all three asset jobs: a file written for `full_job` (datasets and training settings) is
accepted by `data_job` and `training_job` too, each taking the part for its own assets.
"""

from collections.abc import Sequence

from dagster import AssetsDefinition, AssetSelection, ConfigMapping, Field, Permissive, Shape, define_asset_job

from agenet_pipeline.core.code import code_version
from agenet_pipeline.pipeline.assets import evaluation, exports, faces, labels, manifests, training
from agenet_pipeline.pipeline.resources import CODE_TAG
from agenet_pipeline.pipeline.sweep import sweep_job

DATA_ASSETS = [
    manifests.utkface_manifest,
    manifests.appa_real_manifest,
    manifests.imdb_wiki_manifest,
    manifests.adience_manifest,
    manifests.labels_table_manifest,
    manifests.fgnet_manifest,
    *faces.face_assets,
    labels.age_labels,
    labels.data_splits,
    labels.training_shards,
]
TRAINING_ASSETS = [training.preliminary_model, training.imdb_cleaned, training.age_model]
EVALUATION_ASSETS = [evaluation.age_model_evaluation, evaluation.adience_benchmark, evaluation.champion_gate]
EXPORT_ASSETS = [exports.age_model_exports]

CODE_TAGS = {CODE_TAG: code_version()}
DATA = AssetSelection.groups(manifests.GROUP, faces.GROUP, labels.GROUP)
TRAINING = AssetSelection.groups(training.GROUP, evaluation.GROUP)


FULL_JOB_ASSETS = [*DATA_ASSETS, *TRAINING_ASSETS, *EVALUATION_ASSETS]


def _full_job_schema() -> Shape:
    """full_job's run config: its ops' config typed (the Launchpad shows and checks it), the rest checked by the
    job it is mapped to."""
    ops = {
        a.node_def.name: Field(Shape({"config": a.node_def.config_schema.as_field()}), is_required=False)
        for a in FULL_JOB_ASSETS
    }
    others = {section: Field(Permissive(), is_required=False) for section in ("resources", "execution", "loggers")}
    return Shape({"ops": Field(Shape(ops), is_required=False), **others})


def full_job_config(assets: Sequence[AssetsDefinition]) -> ConfigMapping:
    """Run config written for full_job, for a job of some of its assets: Dagster refuses config for an op that a
    job does not run, so the other assets' `ops:` entries are left out."""
    own = {asset.node_def.name for asset in assets}

    def own_part(config: dict) -> dict:
        ops = config.get("ops") or {}
        return {**config, "ops": {name: value for name, value in ops.items() if name in own}}

    return ConfigMapping(config_fn=own_part, config_schema=_full_job_schema(), receive_processed_config_values=False)


data_job = define_asset_job(
    "data_job",
    tags=CODE_TAGS,
    selection=DATA,
    config=full_job_config(DATA_ASSETS),
    description="Raw datasets to training-ready TFRecord shards: manifests, faces, labels, splits.",
)
training_job = define_asset_job(
    "training_job",
    tags=CODE_TAGS,
    selection=TRAINING,
    config=full_job_config([*TRAINING_ASSETS, *EVALUATION_ASSETS]),
    description="The preliminary model, the cleaned IMDB subset, the registered age model and its evaluation.",
)
full_job = define_asset_job(
    "full_job",
    tags=CODE_TAGS,
    selection=DATA | TRAINING,
    description="Everything: the data assets, then training, registration, evaluation and the champion gate.",
)
exports_job = define_asset_job(
    "exports_job",
    tags=CODE_TAGS,
    selection=AssetSelection.groups(exports.GROUP),
    config=full_job_config(EXPORT_ASSETS),
    description="The registered age model's version as TFLite, ONNX and SavedModel, with its bundle (after full_job).",
)
JOBS = [data_job, training_job, full_job, exports_job, sweep_job]
