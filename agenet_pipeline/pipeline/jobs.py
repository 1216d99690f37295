"""The jobs: the data assets, the training and evaluation assets, everything, and the hyperparameter sweep."""

from dagster import AssetSelection, define_asset_job

from agenet_pipeline.pipeline.assets import evaluation, faces, labels, manifests, training
from agenet_pipeline.pipeline.sweep import sweep_job

DATA = AssetSelection.groups(manifests.GROUP, faces.GROUP, labels.GROUP)
TRAINING = AssetSelection.groups(training.GROUP, evaluation.GROUP)

data_job = define_asset_job(
    "data_job",
    selection=DATA,
    description="Raw datasets to training-ready TFRecord shards: manifests, faces, labels, splits.",
)
training_job = define_asset_job(
    "training_job",
    selection=TRAINING,
    description="The preliminary model, the cleaned IMDB subset, the registered age model and its evaluation.",
)
full_job = define_asset_job(
    "full_job",
    selection=DATA | TRAINING,
    description="Everything: the data assets, then training, registration, evaluation and the champion gate.",
)
JOBS = [data_job, training_job, full_job, sweep_job]
