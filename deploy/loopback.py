"""A whole cluster on this machine, on 127.0.0.1 only: PostgreSQL, Redis, the MLflow server and one Celery worker
per queue, each on a free port, from a scratch folder; then a command with the cluster's environment; then every
service stops, also when the command fails.

    python deploy/loopback.py -- dagster job execute -m agenet_pipeline -j full_job \\
        -c configs/demo.yaml -c deploy/cluster.yaml

PostgreSQL refuses to run as root, so it runs as `nobody` when started by root. Redis comes from Debian's
`redis-server` package (installed with apt-get when missing and running as root).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
HOST = "127.0.0.1"


class ServiceError(RuntimeError):
    """A service of the loopback cluster that did not start."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def log_tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def wait_for_port(name: str, port: int, process: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(
                f"{name} exited with {process.returncode} before listening on {HOST}:{port}:\n{log_tail(log)}"
            )
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.3)
    raise ServiceError(f"{name} did not listen on {HOST}:{port} within {seconds:.0f} s: {log}")


def postgres_user() -> str | None:
    """The user PostgreSQL runs as: `nobody` when we are root (it refuses root), else ourselves."""
    return "nobody" if os.geteuid() == 0 else None


def redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() != 0:
        raise ServiceError("redis-server is missing: install Debian's redis-server package")
    subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True, capture_output=True)
    return shutil.which("redis-server") or "/usr/bin/redis-server"


@dataclass
class LoopbackCluster:
    folder: Path
    home: Path
    env: dict[str, str] = field(default_factory=dict)
    processes: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(self, name: str, command: list[str], port: int | None = None, **kwargs) -> subprocess.Popen:
        log = self.folder / f"{name}.log"
        process = subprocess.Popen(
            command,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            process_group=0,
            env={**os.environ, **self.env, **kwargs.pop("env", {})},
            **kwargs,
        )
        self.processes.append((name, process))
        if port is not None:
            wait_for_port(name, port, process, log)
        return process

    def stop(self) -> None:
        """Stop every service: SIGTERM to each process group, SIGKILL to those still running 5 s later (the MLflow
        server takes over 20 s to stop by itself; nothing here keeps state worth the wait)."""
        for _, process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for _, process in reversed(self.processes):
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def worker(self, name: str) -> subprocess.Popen:
        return next(process for worker, process in self.processes if worker == name)

    def start_postgres(self) -> None:
        data, user = self.folder / "postgres", postgres_user()
        data.mkdir()
        password = secrets.token_hex(16)
        (self.folder / "pgpass").write_text(password)
        if user:
            shutil.chown(self.folder, user)
            shutil.chown(data, user)
            shutil.chown(self.folder / "pgpass", user)
        run_as = {"user": user} if user else {}
        subprocess.run(
            [POSTGRES_BIN / "initdb", "-D", data, "-U", "agenet", "-A", "scram-sha-256",
             f"--pwfile={self.folder / 'pgpass'}"],
            check=True, capture_output=True, **run_as,
        )  # fmt: skip
        (self.folder / "pgpass").unlink()
        port = free_port()
        command = [POSTGRES_BIN / "postgres", "-D", data, "-h", HOST, "-p", str(port), "-k", str(data)]
        self.start("postgres", command, port, **run_as)
        self.env |= {
            "AGENET_PG_HOST": HOST,
            "AGENET_PG_PORT": str(port),
            "AGENET_PG_USER": "agenet",
            "AGENET_PG_PASSWORD": password,
            "AGENET_PG_DB": "dagster",
        }
        for database in ("dagster", "mlflow"):
            subprocess.run(
                ["psql", "-h", HOST, "-p", str(port), "-U", "agenet", "-d", "postgres",
                 "-c", f"CREATE DATABASE {database}"],
                check=True, capture_output=True, env={**os.environ, "PGPASSWORD": password},
            )  # fmt: skip

    def start_redis(self) -> None:
        port = free_port()
        command = [redis_server(), "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no",
                   "--dir", str(self.folder)]  # fmt: skip
        self.start("redis", command, port)
        self.env |= {
            "AGENET_CELERY_BROKER": f"redis://{HOST}:{port}/0",
            "AGENET_CELERY_BACKEND": f"redis://{HOST}:{port}/1",
        }

    def start_mlflow(self) -> None:
        port = free_port()
        user, password, db_port = (self.env[f"AGENET_PG_{key}"] for key in ("USER", "PASSWORD", "PORT"))
        store = f"postgresql+psycopg://{user}:{password}@{HOST}:{db_port}/mlflow"
        command = [sys.executable, "-m", "mlflow", "server", "--host", HOST, "--port", str(port), "--workers", "1",
                   "--serve-artifacts",
                   "--artifacts-destination", str(self.folder / "mlflow-artifacts")]  # fmt: skip
        self.start("mlflow", command, port, env={"MLFLOW_BACKEND_STORE_URI": store})  # not in `ps`: a password
        self.env["MLFLOW_TRACKING_URI"] = f"http://{HOST}:{port}"

    def start_worker(self, queue: str, processes: int) -> None:
        command = [sys.executable, "-m", "celery", "-A", "agenet_pipeline.pipeline.celery_worker", "worker",
                   "-Q", queue, "-n", f"{queue}@%h", "-c", str(processes), "--prefetch-multiplier=1",
                   "-l", "INFO"]  # fmt: skip
        self.start(f"worker-{queue}", command, cwd=REPOSITORY)
        self.wait_for_log(f"worker-{queue}", "ready.")

    def log_tail(self, name: str, lines: int = 15) -> str:
        return log_tail(self.folder / f"{name}.log", lines)

    def wait_for_log(self, name: str, text: str, seconds: float = 120) -> None:
        log, process = self.folder / f"{name}.log", self.worker(name)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if text in log.read_text(errors="replace"):
                return
            if process.poll() is not None:
                raise ServiceError(f"{name} exited with {process.returncode}:\n{log_tail(log)}")
            time.sleep(0.5)
        raise ServiceError(f"{name} was not ready within {seconds:.0f} s: {log}")


@contextlib.contextmanager
def loopback_cluster(folder: Path, home: Path, cpu_processes: int = 2) -> Iterator[LoopbackCluster]:
    """Every service of the cluster, started in `folder`, serving runs on `home`; all stopped on the way out."""
    cluster = LoopbackCluster(folder, home)
    cluster.env |= {
        "AGENET_HOME": str(home),
        "DAGSTER_HOME": str(REPOSITORY / "deploy"),
        "AGENET_CELERY_CONFIG": str(REPOSITORY / "deploy" / "cluster.yaml"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")])),
    }
    try:
        cluster.start_postgres()
        cluster.start_redis()
        cluster.start_mlflow()
        cluster.start_worker("cpu", cpu_processes)
        cluster.start_worker("gpu", 1)
        yield cluster
    finally:
        cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="home folder of the runs (default: $AGENET_HOME, else .agenet)")
    parser.add_argument("--cpu-processes", type=int, default=2, help="processes of the cpu queue's worker")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run on the cluster")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    home = (args.home or Path(os.environ.get("AGENET_HOME", ".agenet"))).absolute()
    with tempfile.TemporaryDirectory(prefix="agenet-cluster-") as scratch:
        with loopback_cluster(Path(scratch), home, args.cpu_processes) as cluster:
            print("cluster up:", {k: v for k, v in cluster.env.items() if "PASSWORD" not in k}, flush=True)
            if not command:
                return 0
            return subprocess.run(command, env={**os.environ, **cluster.env}).returncode


if __name__ == "__main__":
    sys.exit(main())
