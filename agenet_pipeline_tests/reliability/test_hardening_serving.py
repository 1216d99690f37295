"""The served model's bad inputs (issue 14, items 5 and 6): paths that lead where the model must not read, files
too large to read, and `image` cells that are not base64.

Each input goes, in one batch with a good photo, through a real served model (logged, then loaded with
`mlflow.pyfunc.load_model`) in a process marked as MLflow's scoring server marks it: started without
AGENET_SERVE_ALLOWED_ROOT (`closed`) or with it (`confined`). Each ends in a row with its reason, and the good photo
is answered beside them. Run with `-s` to see the outcome of every input as a table.
"""

import base64
import os
import re
import tracemalloc
from pathlib import Path

import mlflow
import pytest

from agenet_pipeline.model.architecture import ModelConfig, build_model
from agenet_pipeline.serving.packaging import log_serving_model
from agenet_pipeline.tracking.store import use_experiment
from agenet_pipeline_tests.formats import group_photo, jpeg, png_header_only, write_allowed_folder

HUGE = 1_500_000_000
NOT_INSIDE = ": not inside the folder photos are read from$"
NO_FILES = "^this server reads no files"

# input -> (server, column, expected status, pattern its detail must match); the values are in `inputs` below.
EXPECTED = {
    "/etc/passwd, no allowed folder": ("closed", "path", "invalid_input", NO_FILES),
    "the MLflow database, no allowed folder": ("closed", "path", "invalid_input", NO_FILES),
    "a photo, no allowed folder": ("closed", "path", "invalid_input", NO_FILES),
    "/etc/passwd": ("confined", "path", "outside_root", NOT_INSIDE),
    "the MLflow database": ("confined", "path", "outside_root", NOT_INSIDE),
    "../ to a photo outside": ("confined", "path", "outside_root", NOT_INSIDE),
    "absolute path of a photo outside": ("confined", "path", "outside_root", NOT_INSIDE),
    "a link inside to a photo outside": ("confined", "path", "outside_root", NOT_INSIDE),
    "a missing file outside": ("confined", "path", "outside_root", NOT_INSIDE),
    "a symlink loop": ("confined", "path", "outside_root", NOT_INSIDE),
    "a null byte in the path": ("confined", "path", "invalid_input", "without null bytes"),
    "a pipe": ("confined", "path", "unreadable", "not a regular file$"),
    "a folder": ("confined", "path", "unreadable", "Is a directory$"),
    "a missing file inside": ("confined", "path", "unreadable", "No such file or directory$"),
    "a 1.5 GB file": ("confined", "path", "too_large", f"{HUGE:,} bytes is over the limit of 64,000,000 bytes$"),
    "9000 x 9000 PNG header in a 50 MB file": ("confined", "path", "too_large", "9000x9000 pixels is over"),
    "a photo inside, by a path through ..": ("confined", "path", "ok", ""),
    "text that is not base64": ("confined", "image", "invalid_input", "not base64"),
    "base64 cut short": ("confined", "image", "invalid_input", "not base64"),
    "base64 behind a data: URL prefix": ("confined", "image", "invalid_input", "not base64"),
    "empty text": ("confined", "image", "unreadable", "^empty file$"),
    "base64 of a text file": ("confined", "image", "unreadable", "not an image"),
    "a number": ("confined", "image", "unreadable", "not int"),
}


@pytest.fixture(scope="module")
def model_uri(tmp_path_factory) -> str:
    """A tiny network logged as the served model, in a store of its own."""
    folder = tmp_path_factory.mktemp("store")
    saved = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    use_experiment(f"sqlite:///{folder / 'mlflow.db'}", "hardening", str(folder / "artifacts"))
    with mlflow.start_run():
        info = log_serving_model(build_model(ModelConfig(input_size=32, filters=(8, 16), dense_units=(16,))))
    yield info.model_uri
    mlflow.set_tracking_uri(saved[0])
    mlflow.set_registry_uri(saved[1])


@pytest.fixture(scope="module")
def allowed(tmp_path_factory) -> Path:
    """The folder a confined server reads, beside a photo it may not."""
    folder = write_allowed_folder(tmp_path_factory.mktemp("reads"))
    (folder / "loop_a.jpg").symlink_to(folder / "loop_b.jpg")
    (folder / "loop_b.jpg").symlink_to(folder / "loop_a.jpg")
    os.mkfifo(folder / "pipe.jpg")
    (folder / "huge.jpg").write_bytes(jpeg(group_photo()))
    os.truncate(folder / "huge.jpg", HUGE)  # sparse: the zeros take no disk
    (folder / "bomb.png").write_bytes(png_header_only(9000, 9000))
    os.truncate(folder / "bomb.png", 50_000_000)
    return folder


def inputs(allowed: Path) -> dict[str, str | int]:
    database = mlflow.get_tracking_uri().removeprefix("sqlite:///")
    return {
        "/etc/passwd, no allowed folder": "/etc/passwd",
        "the MLflow database, no allowed folder": database,
        "a photo, no allowed folder": str(allowed / "photos" / "group.jpg"),
        "/etc/passwd": "/etc/passwd",
        "the MLflow database": database,
        "../ to a photo outside": "../secret.jpg",
        "absolute path of a photo outside": str(allowed.parent / "secret.jpg"),
        "a link inside to a photo outside": "link_out.jpg",
        "a missing file outside": "../nowhere.jpg",
        "a symlink loop": "loop_a.jpg",
        "a null byte in the path": "photos/group.jpg\0.png",
        "a pipe": "pipe.jpg",
        "a folder": "photos",
        "a missing file inside": "photos/nowhere.jpg",
        "a 1.5 GB file": str(allowed / "huge.jpg"),
        "9000 x 9000 PNG header in a 50 MB file": str(allowed / "bomb.png"),
        "a photo inside, by a path through ..": "photos/../photos/group.jpg",
        "text that is not base64": "%%% not base64 %%%",
        "base64 cut short": base64.b64encode(jpeg(group_photo())).decode()[:-7],
        "base64 behind a data: URL prefix": "data:image/jpeg;base64," + base64.b64encode(jpeg(group_photo())).decode(),
        "empty text": "",
        "base64 of a text file": base64.b64encode(b"root:x:0:0:root:/root:/bin/bash\n").decode(),
        "a number": 5,
    }


def served_batch(model_uri: str, server: str, allowed: Path, labels: list[str], values: list) -> tuple[list, int]:
    """Each input's rows and the peak of Python memory while the model answered: `values` under their columns
    and a good photo last, sent to the model loaded as a `server` loads it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "true")  # what MLflow's scoring server sets
        if server == "confined":
            patch.setenv("AGENET_SERVE_ALLOWED_ROOT", str(allowed))
        model = mlflow.pyfunc.load_model(model_uri)
        columns = [EXPECTED[label][1] for label in labels] + ["image"]
        cells = [*values, jpeg(group_photo())]
        batch = {c: [v if column == c else None for column, v in zip(columns, cells)] for c in ("image", "path")}
        tracemalloc.start()
        answer = model.predict(batch)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return [answer[answer["input"] == i].to_dict("records") for i in range(len(cells))], peak


@pytest.fixture(scope="module")
def outcomes(model_uri, allowed) -> dict:
    """input -> its rows; and per server, the rows of the good photo and the peak memory of the batch."""
    values = inputs(allowed)
    found = {}
    for server in ("closed", "confined"):
        labels = [label for label, expected in EXPECTED.items() if expected[0] == server]
        rows, peak = served_batch(model_uri, server, allowed, labels, [values[label] for label in labels])
        found |= dict(zip(labels, rows))
        found[server] = (rows[-1], peak)
    return found


def test_every_input_ends_in_a_row_with_its_reason(outcomes):
    table = [("input", "server", "status", "detail", "as expected")]
    for label, (server, _, status, pattern) in EXPECTED.items():
        got = outcomes[label]
        detail = got[0]["detail"] or ""
        good = {row["status"] for row in got} == {status} and re.search(pattern, detail) is not None
        table.append((label, server, got[0]["status"], detail[-90:], "yes" if good else f"NO (expected {status})"))
    widths = [max(len(str(row[i])) for row in table) for i in range(5)]
    print()
    for row in [table[0], tuple("-" * w for w in widths), *table[1:]]:
        print("| " + " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + " |")
    assert all(row[4] == "yes" for row in table[1:]), [row for row in table[1:] if row[4] != "yes"]


def test_nothing_tells_what_exists_outside_the_allowed_folder(outcomes, allowed):
    values = inputs(allowed)
    outside = [label for label, expected in EXPECTED.items() if expected[2] == "outside_root"]
    answers = {outcomes[label][0]["detail"].removeprefix(str(values[label])) for label in outside}
    assert answers == {": not inside the folder photos are read from"}
    closed = [label for label, expected in EXPECTED.items() if expected[0] == "closed"]
    assert len({outcomes[label][0]["detail"] for label in closed}) == 1


def test_the_good_photo_is_answered_beside_the_bad_inputs(outcomes):
    for server in ("closed", "confined"):
        rows, _ = outcomes[server]
        assert [row["status"] for row in rows] == ["ok"] * 3, server


def test_a_large_file_is_refused_without_being_read(outcomes):
    _, peak = outcomes["confined"]
    assert peak < 200_000_000  # the batch holds a 1.5 GB file and a 50 MB one
