"""The Dagster UI's server as a user starts it, on loopback, asked through its GraphQL API what it offers."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from agenet_pipeline.pipeline.definitions import defs

REPOSITORY = Path(__file__).resolve().parents[2]
QUERY = """
{
  assetNodes { assetKey { path } }
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes { name jobs { name } schedules { name cronSchedule } sensors { name } }
    }
  }
}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    """`dagster-webserver -m agenet_pipeline -h 127.0.0.1 -p <port>` with a copy of dagster.yaml as DAGSTER_HOME."""
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(REPOSITORY / "dagster.yaml", home)
    port = free_port()
    command = [str(Path(sys.executable).parent / "dagster-webserver"), "-m", "agenet_pipeline"]
    server = subprocess.Popen(
        [*command, "-h", "127.0.0.1", "-p", str(port)],
        cwd=home,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its code server is in the same process group, stopped with it
    )
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=5):
                break
        except (urllib.error.URLError, ConnectionError):
            if server.poll() is not None or time.monotonic() - started > 120:
                server.kill()
                pytest.fail(f"the webserver did not start: {server.stderr.read().decode()[-3000:]}")
            time.sleep(0.5)
    print(f"\nwebserver answered after {time.monotonic() - started:.1f} s")
    yield url
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=60)


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql", json.dumps({"query": query}).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.load(response)
    assert "errors" not in answer, answer["errors"]
    return answer["data"]


def test_the_ui_lists_every_asset_job_schedule_and_sensor(webserver):
    data = graphql(webserver, QUERY)
    [repository] = data["repositoriesOrError"]["nodes"]

    assets = {"/".join(node["assetKey"]["path"]) for node in data["assetNodes"]}
    assert assets == {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"utkface_manifest", "faces_adience", "data_splits", "age_model"} <= assets
    assert {job["name"] for job in repository["jobs"]} >= {"data_job", "training_job", "full_job", "sweep_job"}
    assert repository["schedules"] == [{"name": "retraining_schedule", "cronSchedule": "0 3 * * 1"}]
    assert repository["sensors"] == [{"name": "dataset_change_sensor"}]


def test_the_ui_listens_on_loopback_only(webserver):
    port = int(webserver.rsplit(":", 1)[1])
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    local = {line.split()[1] for line in listening if line.split()[3] == "0A"}  # 0A: LISTEN
    assert f"0100007F:{port:04X}" in local  # 127.0.0.1, little-endian hex
    assert f"00000000:{port:04X}" not in local  # not 0.0.0.0
