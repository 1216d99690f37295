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


@pytest.fixture(scope="module")
def server(registry, tmp_path_factory):
    port = free_port()
    log = (tmp_path_factory.mktemp("serve") / "serve.log").open("w")
    venv = Path(sys.executable).parent  # mlflow starts `uvicorn` from the PATH
    process = subprocess.Popen(
        [str(venv / "mlflow"), "models", "serve", "-m", "models:/agenet@champion", "--env-manager", "local"]
        + ["--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "MLFLOW_TRACKING_URI": registry.uri, "PATH": f"{venv}:{os.environ['PATH']}"},
        stdout=log,
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
                    pytest.fail(f"the server did not start: {Path(log.name).read_text()[-3000:]}")
                time.sleep(1)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


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
    status, answer = post(server, {"dataframe_records": [{"image": "%%% not base64"}]})
    assert status == 400
    status, answer = post(server, {**records(jpeg(group_photo())), "params": {"aligned": True}})
    assert status == 200 and [(p["box_w"], p["box_h"]) for p in answer["predictions"]] == [(600, 200)]
