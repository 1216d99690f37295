import os
import subprocess
import sys
import textwrap

import cv2
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from agenet_pipeline.core.ages import SEED_BINS
from agenet_pipeline_tests.formats import GROUP_AGES, empty_scene, group_photo, jpeg, png_header_only


def test_a_row_per_face_of_agroup_photo(served):
    answer = served.predict(pd.DataFrame({"image": [jpeg(group_photo())]}))
    assert list(answer["status"]) == ["ok"] * len(GROUP_AGES)
    assert list(answer["input"]) == [0, 0, 0] and list(answer["face"]) == [0, 1, 2]
    assert sorted((x + w // 2) // 200 for x, w in zip(answer["box_x"], answer["box_w"])) == [0, 1, 2]
    scores = list(answer["detector_score"])
    assert scores == sorted(scores, reverse=True) and scores[-1] >= 0.5
    for _, row in answer.iterrows():
        probabilities = np.array(row["probabilities"])
        assert probabilities.shape == (10,) and probabilities.sum() == pytest.approx(1, abs=1e-5)
        assert row["bin"] == probabilities.argmax() and row["bin_label"] == SEED_BINS.labels[row["bin"]]
        assert row["age"] == pytest.approx(SEED_BINS.expected_age(probabilities))


def test_bytes_arrays_and_paths_give_the_same_answer(served, tmp_path):
    photo = group_photo()
    path = tmp_path / "group.png"
    path.write_bytes(cv2.imencode(".png", photo[..., ::-1])[1].tobytes())
    from_array = served.predict(pd.DataFrame({"image": [photo]}))
    from_path = served.predict(pd.DataFrame({"path": [str(path)]}))
    assert len(from_array) == len(from_path) == 3
    assert np.allclose(np.stack(from_array["probabilities"]), np.stack(from_path["probabilities"]), atol=1e-5)


def test_a_photo_without_a_face_has_no_row_and_the_batch_goes_on(served):
    answer = served.predict(pd.DataFrame({"image": [jpeg(empty_scene()), jpeg(group_photo())]}))
    assert set(answer["input"]) == {1} and len(answer) == 3
    assert served.predict(pd.DataFrame({"image": [jpeg(empty_scene())]})).empty


def test_unusable_inputs_are_rows_with_a_reason(served, tmp_path):
    good = jpeg(group_photo())
    answer = served.predict(
        pd.DataFrame(
            {
                "image": [b"not an image", png_header_only(9000, 9000), None, good[: len(good) // 2], None],
                "path": [None, None, str(tmp_path / "missing.jpg"), None, "/dev/zero"],
            }
        )
    )
    assert list(answer["status"]) == ["unreadable", "too_large", "unreadable", "unreadable", "unreadable"]
    details = list(answer["detail"])
    assert "not an image" in details[0] and "64,000,000" in details[1] and "missing.jpg" in details[2]
    assert "truncated" in details[3] and "not a regular file" in details[4]
    assert answer["age"].isna().all()


def test_a_row_needs_exactly_one_photo_and_a_frame_needs_a_photo_column(served):
    answer = served.predict(pd.DataFrame({"image": [None, jpeg(group_photo())], "path": [None, "/x.jpg"]}))
    assert list(answer["status"]) == ["invalid_input", "invalid_input"]
    with pytest.raises(MlflowException, match="needs a column 'image'"):
        served.predict(pd.DataFrame({"photo": ["x"]}))


def test_aligned_photos_are_one_face_each_without_detection(served):
    answer = served.predict(
        pd.DataFrame({"image": [jpeg(empty_scene()), jpeg(group_photo())]}), params={"aligned": True}
    )
    assert list(answer["input"]) == [0, 1] and list(answer["status"]) == ["ok", "ok"]
    assert list(answer["box_w"]) == [240, 600] and list(answer["box_h"]) == [180, 200]
    assert answer["detector_score"].isna().all()


def test_the_served_network_matches_keras(served, registry, mlflow_store):
    mlflow_store(registry.uri)
    predictor = served.unwrap_python_model().predictor
    keras_model = mlflow.keras.load_model(f"runs:/{registry.run_id}/model")
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    assert np.allclose(predictor.network(x), keras_model.predict_on_batch(x), atol=1e-5)


def test_the_registered_version_is_the_serving_model_beside_the_keras_model(registry, mlflow_store):
    client = mlflow.MlflowClient(mlflow_store(registry.uri))
    version = client.get_model_version("agenet", registry.version)
    experiment = client.get_run(registry.run_id).info.experiment_id
    logged = client.search_logged_models([experiment], filter_string=f"source_run_id = '{registry.run_id}'")
    ids = {model.name: model.model_id for model in logged}
    assert set(ids) == {"model", "serving_model"}
    assert version.run_id == registry.run_id and version.source == f"models:/{ids['serving_model']}"
    assert mlflow.keras.load_model(f"models:/{ids['model']}").output_shape == (None, 10)


def test_the_model_works_from_its_logged_code_without_the_package(registry):
    """A user's process: the package cannot be imported, only the libraries; no Dagster is loaded."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
        try:
            import agenet_pipeline
            sys.exit("the package is importable: the test cannot hide it")
        except ImportError:
            pass
        import mlflow, pandas as pd
        mlflow.set_tracking_uri("{registry.uri}")
        model = mlflow.pyfunc.load_model("models:/agenet@champion")
        answer = model.predict(pd.DataFrame({{"image": [open(sys.argv[1], "rb").read()]}}))
        print(len(answer), sys.modules["agenet_pipeline"].__file__, "dagster" in sys.modules)
        """
    )
    photo = registry.folder / "group.jpg"
    photo.write_bytes(jpeg(group_photo()))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(photo)],
        cwd=registry.folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows, module_file, dagster_loaded = done.stdout.split()[-3:]
    assert rows == "3" and "/code/agenet_pipeline/" in module_file and dagster_loaded == "False"
