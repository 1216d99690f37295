import json
from dataclasses import asdict

from agenet_pipeline.faces.settings import FaceSettings


def test_recorded_settings_read_back_as_written():
    settings = FaceSettings(margin=0.3, context=1.5, crop_size=200)
    assert FaceSettings.recorded(json.loads(json.dumps(asdict(settings)))) == settings


def test_a_record_from_before_context_made_its_crops_without_one():
    record = asdict(FaceSettings())
    del record["context"]
    assert FaceSettings.recorded(record).context is None
    assert FaceSettings().context == 1.25
