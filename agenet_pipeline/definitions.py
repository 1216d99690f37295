from dagster import AssetSelection, Definitions, define_asset_job, multiprocess_executor

from agenet_pipeline.assets import faces, labels, manifests
from agenet_pipeline.resources import AgeNetHome, DatasetRoots, FaceDetectorResource

data_job = define_asset_job(
    "data_job",
    selection=AssetSelection.groups(manifests.GROUP, faces.GROUP, labels.GROUP),
    description="Raw datasets to training-ready TFRecord shards: manifests, faces, labels, splits.",
)

defs = Definitions(
    assets=[manifests.utkface_manifest, manifests.appa_real_manifest, manifests.imdb_wiki_manifest,
            manifests.adience_manifest, *faces.face_assets, labels.age_labels, labels.data_splits,
            labels.training_shards],
    asset_checks=[labels.labels_in_range, labels.no_split_leakage, labels.every_bin_present],
    jobs=[data_job],
    resources={"home": AgeNetHome(), "dataset_roots": DatasetRoots(), "face_detector": FaceDetectorResource()},
    executor=multiprocess_executor,
)
