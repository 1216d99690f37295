"""The UTKFace face stage through Celery: one `cpu` worker process against two, and today's in-step process pool.

    .venv/bin/python benchmarks/scale_out.py                  # all of ../shared/data/utkface_part1
    .venv/bin/python benchmarks/scale_out.py --shard-size 250 --pool-workers 2

Each Celery case starts a loopback cluster (deploy/loopback.py: Postgres, Redis, MLflow, a `cpu` worker with N
processes, a `gpu` worker) on a fresh home, then materialises `utkface_manifest` and `faces_utkface` with
deploy/cluster.yaml. Its rate is photos / (last shard step's end - first shard step's start), from the run's step
events in Postgres: the shard phase only, not the cluster's start nor the manifest. The in-step pool case is
`run_face_stage(..., workers=N)` on the same manifest into a fresh folder (the stage as it ran inside one step
before it fanned out), timed whole, pool start-up included.

Targets: two worker processes >= 1.7x one on 2 cores; the rate per Celery worker process >= 80 % of the in-step
pool's rate per process.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_UTKFACE = REPOSITORY.parent / "shared" / "data" / "utkface_part1"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utkface", type=Path, default=DEFAULT_UTKFACE, help="UTKFace root (default: %(default)s)")
    parser.add_argument("--shard-size", type=int, default=500, help="photos per shard step (default: %(default)s)")
    parser.add_argument("--pool-workers", type=int, default=2, help="processes of the in-step pool and of the larger "
                        "Celery case (default: %(default)s)")  # fmt: skip
    return parser.parse_args(argv)


def loopback():
    spec = importlib.util.spec_from_file_location("loopback", REPOSITORY / "deploy" / "loopback.py")
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_config(args: argparse.Namespace, folder: Path) -> Path:
    path = folder / "faces.yaml"
    path.write_text(
        f"resources: {{dataset_roots: {{config: {{utkface: '{args.utkface}'}}}}}}\n"
        f"ops: {{faces_utkface: {{config: {{shard_size: {args.shard_size}, fallback_whole_image: true}}}}}}\n"
    )
    return path


def shard_phase(env: dict[str, str]) -> tuple[int, float]:
    """(photos, seconds from the first shard step's start to the last one's end) of the latest run."""
    from dagster import DagsterEventType, DagsterInstance

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with DagsterInstance.from_config(str(REPOSITORY / "deploy")) as instance:
            run_id = instance.get_runs(limit=1)[0].run_id
            starts = [e.timestamp for e in instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)
                      if ".face_shard_" in (e.step_key or "")]  # fmt: skip
            ends = [e for e in instance.all_logs(run_id, of_type=DagsterEventType.STEP_OUTPUT)
                    if ".face_shard_" in (e.step_key or "")]  # fmt: skip
            photos = sum(e.dagster_event.step_output_data.metadata["rows"].value for e in ends)
            return photos, max(e.timestamp for e in ends) - min(starts)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def celery_case(args: argparse.Namespace, processes: int) -> tuple[int, float]:
    cluster_module = loopback()
    with tempfile.TemporaryDirectory(prefix="agenet-scale-out-") as scratch:
        folder = Path(scratch)
        config = run_config(args, folder)
        # The scratch folder holds the services' files too: PostgreSQL's user must be able to enter it.
        with cluster_module.loopback_cluster(folder, folder / "home", processes) as cluster:
            command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "agenet_pipeline",
                       "--select", "utkface_manifest,faces_utkface", "-c", str(config),
                       "-c", str(REPOSITORY / "deploy" / "cluster.yaml")]  # fmt: skip
            completed = subprocess.run(command, cwd=folder, env={**os.environ, **cluster.env}, capture_output=True,
                                       text=True)  # fmt: skip
            if completed.returncode != 0:
                raise SystemExit(f"the Celery run failed:\n{completed.stdout[-3000:]}{completed.stderr[-3000:]}")
            return shard_phase(cluster.env)


def pool_case(args: argparse.Namespace) -> tuple[int, float]:
    from agenet_pipeline.datasets.utkface import read_utkface
    from agenet_pipeline.faces.detector import resolve_model
    from agenet_pipeline.faces.settings import FaceSettings
    from agenet_pipeline.faces.sharded import run_face_stage

    manifest = read_utkface(args.utkface)
    with tempfile.TemporaryDirectory(prefix="agenet-scale-out-pool-") as scratch:
        started = time.perf_counter()
        run = run_face_stage(manifest, Path(scratch), resolve_model(), FaceSettings(fallback_whole_image=True),
                             args.shard_size, args.pool_workers)  # fmt: skip
        return run.rows_processed, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.utkface.is_dir():
        raise SystemExit(f"{args.utkface} is not here: the benchmark needs the UTKFace chips")
    one = celery_case(args, 1)
    two = celery_case(args, args.pool_workers)
    pool = pool_case(args)
    rate = {name: photos / seconds for name, (photos, seconds) in (("one", one), ("two", two), ("pool", pool))}
    per_process = {"one": rate["one"], "two": rate["two"] / args.pool_workers, "pool": rate["pool"] / args.pool_workers}
    print("| case | photos | seconds | photos/s | photos/s per process |\n|---|---|---|---|---|")
    rows = [("Celery, 1 cpu worker process", one, "one"),
            (f"Celery, {args.pool_workers} cpu worker processes", two, "two"),
            (f"in-step pool, {args.pool_workers} processes", pool, "pool")]  # fmt: skip
    for label, (photos, seconds), key in rows:
        print(f"| {label} | {photos} | {seconds:.1f} | {rate[key]:.0f} | {per_process[key]:.0f} |")
    print(f"\n{args.pool_workers} processes / 1: {rate['two'] / rate['one']:.2f}x (target >= 1.7x on 2 cores)")
    print(f"per Celery process / per pool process: {per_process['two'] / per_process['pool']:.0%} (target >= 80 %)")


if __name__ == "__main__":
    main()
