import base64
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from agenet_pipeline.core.ages import SEED_BINS, YEARS
from agenet_pipeline.faces.images import ImageRejected
from agenet_pipeline.serving.pyfunc import ALLOWED_ROOT_VARIABLE, NO_PATHS, from_base64
from agenet_pipeline_tests.formats import (
    GROUP_AGES,
    empty_scene,
    group_photo,
    jpeg,
    png_header_only,
    write_allowed_folder,
)


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
        assert YEARS.midpoints[0] <= row["age"] <= YEARS.midpoints[-1]  # read out of the years, not the bins
        assert row["bin"] == SEED_BINS.index(row["age"]) and row["bin_label"] == SEED_BINS.labels[row["bin"]]


def test_bytes_arrays_and_paths_give_the_same_answer(served, tmp_path):
    photo = group_photo()
    path = tmp_path / "group.png"
    path.write_bytes(cv2.imencode(".png", photo[..., ::-1])[1].tobytes())
    from_array = served.predict(pd.DataFrame({"image": [photo]}))
    from_path = served.predict(pd.DataFrame({"path": [str(path)]}))
    assert len(served.predict(pd.DataFrame({"path": [path]}))) == 3  # a Path as well as its text
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


def statuses(answer: pd.DataFrame) -> dict[int, list[str]]:
    """The status of each row, per input."""
    return answer.groupby("input")["status"].agg(list).to_dict()


def test_a_bad_base64_row_is_answered_alone(served):
    photo = jpeg(group_photo())
    answer = served.predict(
        pd.DataFrame(
            {
                "image": [
                    "%%% not base64",
                    base64.b64encode(photo).decode(),
                    base64.encodebytes(photo).decode(),  # as MLflow's client sends it: a line break every 76
                    "",
                    photo,
                ]
            }
        )
    )
    assert statuses(answer) == {0: ["invalid_input"], 1: ["ok"] * 3, 2: ["ok"] * 3, 3: ["unreadable"], 4: ["ok"] * 3}
    assert "not base64" in answer["detail"][0]


def test_a_file_over_the_byte_limit_is_too_large_before_it_is_read(served, tmp_path):
    huge = tmp_path / "huge.jpg"
    huge.write_bytes(jpeg(group_photo()))
    os.truncate(huge, 200_000_000)  # sparse: the zeros take no disk
    [row] = served.predict(pd.DataFrame({"path": [str(huge)]})).to_dict("records")
    assert row["status"] == "too_large"
    assert row["detail"] == f"{huge}: 200,000,000 bytes is over the limit of 64,000,000 bytes"


def test_base64_over_the_byte_limit_is_refused_before_it_is_decoded():
    with pytest.raises(ImageRejected, match="^too_large: 11 bytes is over the limit of 10 bytes$") as rejection:
        from_base64(base64.b64encode(b"x" * 11).decode(), max_bytes=10)
    assert rejection.value.reason == "too_large"
    assert from_base64(base64.b64encode(b"x" * 10).decode(), max_bytes=10) == b"x" * 10


def test_a_scoring_server_without_an_allowed_folder_reads_no_file(served, registry, tmp_path, monkeypatch):
    photo = tmp_path / "group.jpg"
    photo.write_bytes(jpeg(group_photo()))
    monkeypatch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "true")  # what MLflow's scoring server sets
    paths = [str(photo), "/etc/passwd", str(registry.folder / "mlflow.db"), "/nowhere.jpg"]
    answer = served.predict(pd.DataFrame({"path": [*paths, None], "image": [None] * 4 + [jpeg(group_photo())]}))
    assert statuses(answer) == {i: ["invalid_input"] for i in range(4)} | {4: ["ok"] * 3}
    assert set(answer["detail"][:4]) == {NO_PATHS}


@pytest.fixture(scope="module")
def allowed(tmp_path_factory) -> Path:
    """A folder the model may read (a photo, a link leading out of it), beside a photo it may not."""
    return write_allowed_folder(tmp_path_factory.mktemp("reads"))


@pytest.fixture(scope="module")
def confined(served, allowed):
    """The champion loaded with AGENET_SERVE_ALLOWED_ROOT set, as a scoring server started with it loads it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ALLOWED_ROOT_VARIABLE, str(allowed))
        return mlflow.pyfunc.load_model("models:/agenet@champion")


def test_with_an_allowed_folder_paths_are_read_only_inside_it(confined, allowed, registry):
    inside = ["photos/group.jpg", str(allowed / "photos" / "group.jpg"), "photos/../photos/group.jpg"]
    outside = [
        "../secret.jpg",
        str(allowed.parent / "secret.jpg"),
        "link_out.jpg",  # a link inside, to a file outside
        "/etc/passwd",
        str(registry.folder / "mlflow.db"),
        "../nowhere.jpg",
        "/nowhere/at/all.jpg",
    ]
    answer = confined.predict(pd.DataFrame({"path": [*inside, *outside, "photos/missing.jpg"]}))
    rows = answer.groupby("input").first()
    missing = 3 + len(outside)
    expected = {i: ["ok"] * 3 for i in range(3)} | {i: ["outside_root"] for i in range(3, missing)}
    assert statuses(answer) == expected | {missing: ["unreadable"]}
    # The same answer whether the file outside exists or not.
    assert [rows["detail"][3 + i].removeprefix(path) for i, path in enumerate(outside)] == [
        ": not inside the folder photos are read from"
    ] * len(outside)
    assert rows["detail"][missing] == "photos/missing.jpg: No such file or directory"


def test_an_allowed_folder_that_is_not_one_stops_the_model_loading(served, tmp_path, monkeypatch):
    monkeypatch.setenv(ALLOWED_ROOT_VARIABLE, str(tmp_path / "nowhere"))
    with pytest.raises(NotADirectoryError, match="AGENET_SERVE_ALLOWED_ROOT=.*nowhere: not a folder"):
        mlflow.pyfunc.load_model("models:/agenet@champion")


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
    assert mlflow.keras.load_model(f"models:/{ids['model']}").output_shape == (None, 101)


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
