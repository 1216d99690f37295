from dagster import AssetSelection, Definitions, define_asset_job, multiprocess_executor

from agenet_pipeline.assets import faces, labels, manifests, training
from agenet_pipeline.resources import AgeNetHome, DatasetRoots, FaceDetectorResource, MLflowResource
from agenet_pipeline.sweep import sweep_job

data = AssetSelection.groups(manifests.GROUP, faces.GROUP, labels.GROUP)
data_job = define_asset_job(
    "data_job",
    selection=data,
    description="Raw datasets to training-ready TFRecord shards: manifests, faces, labels, splits.",
)
training_job = define_asset_job(
    "training_job",
    selection=AssetSelection.groups(training.GROUP),
    description="The preliminary model, the cleaned IMDB subset and the registered age model.",
)
full_job = define_asset_job(
    "full_job",
    selection=data | AssetSelection.groups(training.GROUP),
    description="Everything: the data assets, then training and registration.",
)

DATA_ASSETS = [
    manifests.utkface_manifest,
    manifests.appa_real_manifest,
    manifests.imdb_wiki_manifest,
    manifests.adience_manifest,
    *faces.face_assets,
    labels.age_labels,
    labels.data_splits,
    labels.training_shards,
]
DATA_CHECKS = [labels.labels_in_range, labels.no_split_leakage, labels.every_bin_present]
TRAINING_ASSETS = [training.preliminary_model, training.imdb_cleaned, training.age_model]

defs = Definitions(
    assets=[*DATA_ASSETS, *TRAINING_ASSETS],
    asset_checks=DATA_CHECKS,
    jobs=[data_job, training_job, full_job, sweep_job],
    resources={
        "home": AgeNetHome(),
        "dataset_roots": DatasetRoots(),
        "face_detector": FaceDetectorResource(),
        "mlflow": MLflowResource(),
    },
    executor=multiprocess_executor,
)
