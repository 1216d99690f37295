"""`mlflow models serve` of the champion, answering real HTTP requests on loopback."""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agenet_pipeline_tests.formats import group_photo, jpeg, png_header_only


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def records(*images: bytes) -> dict:
    return {"dataframe_records": [{"image": base64.b64encode(image).decode()} for image in images]}


@contextmanager
def serving(registry, log: Path, **env: str) -> Iterator[int]:
    """`mlflow models serve` of the champion on a free loopback port, with `env` added to its environment."""
    port = free_port()
    venv = Path(sys.executable).parent  # mlflow starts `uvicorn` from the PATH
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(venv / "mlflow"), "models", "serve", "-m", "models:/agenet@champion", "--env-manager", "local"]
            + ["--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, "MLFLOW_TRACKING_URI": registry.uri, "PATH": f"{venv}:{os.environ['PATH']}", **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 240
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"the server did not start: {log.read_text()[-3000:]}")
                    time.sleep(1)
            yield port
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def allowed(tmp_path_factory) -> Path:
    """A folder the server may read, beside a photo it may not."""
    parent = tmp_path_factory.mktemp("reads")
    (parent / "secret.jpg").write_bytes(jpeg(group_photo()))
    (parent / "allowed").mkdir()
    (parent / "allowed" / "group.jpg").write_bytes(jpeg(group_photo()))
    return parent / "allowed"


@pytest.fixture(scope="module")
def server(registry, allowed, tmp_path_factory):
    """A server started with an allowed folder."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serving(registry, log, AGENET_SERVE_ALLOWED_ROOT=str(allowed)) as port:
        yield port


@pytest.fixture(scope="module")
def closed_server(registry, tmp_path_factory):
    """A server started without an allowed folder."""
    with serving(registry, tmp_path_factory.mktemp("serve") / "serve.log") as port:
        yield port


def answered(answer: dict) -> dict[int, list[str]]:
    """The status of each prediction, per input."""
    found: dict[int, list[str]] = {}
    for prediction in answer["predictions"]:
        found.setdefault(prediction["input"], []).append(prediction["status"])
    return found


@pytest.mark.slow
def test_the_server_answers_a_row_per_face(server):
    status, answer = post(server, records(jpeg(group_photo())))
    assert status == 200
    faces = answer["predictions"]
    assert [f["face"] for f in faces] == [0, 1, 2] and all(f["status"] == "ok" for f in faces)
    assert all(0 <= f["age"] <= 120 and len(f["probabilities"]) == 10 for f in faces)


@pytest.mark.slow
def test_bad_inputs_get_a_reason_and_the_server_keeps_answering(server):
    status, answer = post(server, records(b"MZ\x90\x00 an executable", png_header_only(9000, 9000)))
    assert status == 200
    assert [(p["status"], p["age"]) for p in answer["predictions"]] == [("unreadable", None), ("too_large", None)]
    assert "9000x9000 pixels is over the limit" in answer["predictions"][1]["detail"]
    status, answer = post(server, {"dataframe_records": [{"photo": "x"}]})
    assert status == 400 and "needs a column 'image'" in answer["message"]
    status, answer = post(server, {**records(jpeg(group_photo())), "params": {"aligned": True}})
    assert status == 200 and [(p["box_w"], p["box_h"]) for p in answer["predictions"]] == [(600, 200)]


@pytest.mark.slow
def test_one_bad_base64_row_leaves_the_rest_of_the_batch_answered(server):
    good = base64.b64encode(jpeg(group_photo())).decode()
    rows = [{"image": "%%% not base64"}, {"image": good}, {"image": good[:-7]}, {"path": "group.jpg"}]
    status, answer = post(server, {"dataframe_records": rows})
    assert status == 200
    assert answered(answer) == {0: ["invalid_input"], 1: ["ok"] * 3, 2: ["invalid_input"], 3: ["ok"] * 3}
    assert "not base64" in answer["predictions"][0]["detail"]


@pytest.mark.slow
def test_a_server_without_an_allowed_folder_reads_no_file(closed_server, registry, allowed):
    paths = ["/etc/passwd", str(registry.folder / "mlflow.db"), "/nowhere.jpg", str(allowed / "group.jpg")]
    status, answer = post(closed_server, {"dataframe_records": [{"path": path} for path in paths]})
    assert status == 200 and answered(answer) == {i: ["invalid_input"] for i in range(len(paths))}
    assert {p["detail"] for p in answer["predictions"]} == {
        "this server reads no files: send the photo as 'image', or start the server with AGENET_SERVE_ALLOWED_ROOT "
        "set to the folder it may read"
    }
    photo = base64.b64encode(jpeg(group_photo())).decode()
    status, answer = post(closed_server, {"dataframe_records": [{"path": "/etc/passwd"}, {"image": photo}]})
    assert status == 200 and answered(answer) == {0: ["invalid_input"], 1: ["ok"] * 3}


@pytest.mark.slow
def test_a_server_reads_only_inside_its_allowed_folder(server, allowed, registry):
    outside = ["/etc/passwd", str(registry.folder / "mlflow.db"), "../secret.jpg", "../nowhere.jpg", "/nowhere.jpg"]
    inside = ["group.jpg", str(allowed / "group.jpg"), "missing.jpg"]
    status, answer = post(server, {"dataframe_records": [{"path": path} for path in outside + inside]})
    assert status == 200
    expected = {i: ["outside_root"] for i in range(len(outside))} | {5: ["ok"] * 3, 6: ["ok"] * 3, 7: ["unreadable"]}
    assert answered(answer) == expected
    details = [p["detail"] for p in answer["predictions"] if p["status"] != "ok"]
    # The same answer whether the file outside exists or not.
    assert [detail.removeprefix(path) for detail, path in zip(details, outside)] == [
        ": not inside the folder photos are read from"
    ] * 5
    assert details[-1] == "missing.jpg: No such file or directory"
