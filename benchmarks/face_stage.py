"""Throughput of the face stage: JPEG decode alone, detection alone, and the whole stage with 1 and 2 workers.

    .venv/bin/python benchmarks/face_stage.py --runs 5            # all of ../shared/data/utkface_part1 + demo set
    .venv/bin/python benchmarks/face_stage.py --runs 3 --limit 500  # quicker

Datasets: the real UTKFace chips at ../shared/data/utkface_part1 (skipped with a note when absent) and a synthetic
demo UTKFace set written to a temporary folder. Only the manifest rows with status "ok" are used, the same images
for every mode; `--limit N` keeps N of them, evenly spaced over the sorted manifest (the names start with the age,
so the first N would all be babies).

How it is timed, per dataset:
- Every file is read once before any timing, so the page cache is equally warm for every mode.
- decode: `decode_rgb` over the bytes already in memory.
- detect: `FaceDetector.detect` over the images already decoded; the detector is created before timing.
- stage wN: `run_face_stage(..., workers=N)` into a fresh folder each time (a re-run into the same folder would
  reuse the shards). Its time includes the start-up (N=1: creating the detector; N>1: spawning the process pool,
  importing mediapipe in each worker and creating one detector per worker). The start-up is measured by a probe
  run just before: `run_face_stage` over N images in N shards of one image (so one image per worker). The rate
  reported is (images - N) / (T_full - T_probe); the probe's time is reported as "start-up". When other
  processes load the machine the start-up jitters by seconds, so a second, start-up-free figure is reported too:
  "steady-state" = images in the shards finished after every worker had finished one / (time of the last shard -
  time of the N-th), from the shard files' modification times (each is written when its shard is done).
- The modes run interleaved, in a rotating order, once per run; the table gives medians over the runs, and the
  ratios are computed within each run and then their median is taken, since the machine is shared and noisy.
- CPU ms/img is this process's CPU time plus that of its finished child processes (the pool's workers), per
  image, start-up (probe) excluded the same way. "Cores busy" = images/s x CPU s/img: about 1 per worker when
  the workers had their cores; more than 1 in one process means native threads (OpenCV's pool, polars, Arrow).

OpenCV threads: the stage runs OpenCV with one thread in each of its processes (it is parallel over processes),
so decode and detection alone are timed with one OpenCV thread too.

Ratios and targets: floor = 1 / (1/decode + 1/detect) images/s; target: stage w1 >= 80 % of the floor (per core),
and stage w2 close to 2x stage w1 on 2 cores.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_UTKFACE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "utkface_part1"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of every mode (medians are reported)")
    parser.add_argument("--limit", type=int, default=None, help="at most N images per dataset, evenly spaced")
    parser.add_argument(
        "--utkface", type=Path, default=DEFAULT_UTKFACE, help="real UTKFace root (default: %(default)s)"
    )
    parser.add_argument("--demo-count", type=int, default=600, help="images in the demo UTKFace set")
    parser.add_argument("--no-demo", action="store_true", help="skip the demo set")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="the most workers to time (default: 2 when the machine has 2+ cores, else 1)",
    )
    parser.add_argument(
        "--shard-size",
        type=int,
        default=None,
        help="rows per shard (default: images / 8, so that 2 workers get 4 equal shards each)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile one in-process pass of the stage's per-shard function per dataset",
    )
    return parser.parse_args(argv)


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_seconds() -> float:
    """CPU time of this process and of its child processes that have finished."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn):
    cpu, wall = cpu_seconds(), time.perf_counter()
    result = fn()
    return time.perf_counter() - wall, cpu_seconds() - cpu, result


def evenly_spaced(frame, limit: int | None):
    if limit is None or limit >= frame.height:
        return frame
    step = frame.height / limit
    return frame[[int(i * step) for i in range(limit)]]


def datasets(args, scratch: Path):
    import polars as pl

    from agenet_pipeline.core.status import OK
    from agenet_pipeline.datasets.utkface import read_utkface
    from agenet_pipeline.demo.writers import demo_dataset

    found = []
    if args.utkface.is_dir():
        found.append(("utkface_part1", read_utkface(args.utkface)))
    else:
        print(f"note: {args.utkface} is absent: the real UTKFace set is skipped")
    if not args.no_demo:
        demo = demo_dataset(scratch / "demo", "utkface", args.demo_count)
        found.append((f"demo utkface ({args.demo_count})", read_utkface(demo)))
    return [(name, evenly_spaced(m.filter(pl.col("status") == OK), args.limit)) for name, m in found]


def bench_dataset(name: str, manifest, args, scratch: Path, max_workers: int) -> dict:
    from agenet_pipeline.faces.detector import FaceDetector, resolve_model
    from agenet_pipeline.faces.images import ImageRejected, decode_rgb
    from agenet_pipeline.faces.settings import FaceSettings
    from agenet_pipeline.faces.sharded import run_face_stage

    settings, model = FaceSettings(), resolve_model()
    paths = list(manifest["image_path"])
    n = len(paths)
    datas = [Path(p).read_bytes() for p in paths]  # warms the page cache for every mode
    rgbs = []
    for data in datas:
        try:
            rgbs.append(decode_rgb(data, settings.max_pixels))
        except ImageRejected:
            pass
    shard_size = args.shard_size or max(math.ceil(n / 8), 1)
    print(
        f"\n## {name}: {n} images ({n - len(rgbs)} not decodable), {sum(map(len, datas)) / n / 1024:.1f} KiB "
        f"per file, shard size {shard_size}",
        flush=True,
    )

    def decode_all():
        for data in datas:
            try:
                decode_rgb(data, settings.max_pixels)
            except ImageRejected:
                pass

    folders = iter(range(10**9))

    def stage(rows, workers, size):
        folder = scratch / f"out-{next(folders)}"  # fresh: shards already in a folder would be reused
        return folder, run_face_stage(rows, folder, model, settings, size, workers)

    modes = ["decode", "detect"] + [f"stage w{w}" for w in range(1, max_workers + 1)]
    # per run: (images/s, CPU ms/img, start-up s, steady-state images/s from shard times, images/s with start-up)
    samples = {mode: [] for mode in modes}
    jittery = set()  # modes whose work took less time than their start-up in some run
    with FaceDetector(model) as detector:
        detector.detect(rgbs[0])  # the first call allocates; keep it out of the timing
        for run in range(args.runs):
            order = modes[run % len(modes) :] + modes[: run % len(modes)]
            for mode in order:
                if mode == "decode":
                    wall, cpu, _ = timed(decode_all)
                    samples[mode].append((n / wall, 1e3 * cpu / n, None, None, None))
                elif mode == "detect":
                    wall, cpu, _ = timed(lambda: [detector.detect(rgb) for rgb in rgbs])
                    samples[mode].append((len(rgbs) / wall, 1e3 * cpu / len(rgbs), None, None, None))
                else:
                    workers = int(mode.removeprefix("stage w"))
                    probe_wall, probe_cpu, (probe_folder, _) = timed(lambda w=workers: stage(manifest.head(w), w, 1))
                    wall, cpu, (folder, result) = timed(lambda w=workers: stage(manifest, w, shard_size))
                    assert result.rows_processed == n, result
                    steady = steady_rate(folder, n, shard_size, workers)
                    shutil.rmtree(probe_folder), shutil.rmtree(folder)
                    net, work = n - workers, wall - probe_wall
                    if work < probe_wall:
                        jittery.add(mode)
                    samples[mode].append(
                        (
                            net / work if work > 0 else math.nan,
                            1e3 * (cpu - probe_cpu) / net,
                            probe_wall,
                            steady,
                            n / wall,
                        )
                    )
            print(
                f"run {run + 1}/{args.runs}: " + ", ".join(f"{m} {samples[m][-1][0]:.0f}/s" for m in modes), flush=True
            )

    per_run = []
    for run in range(args.runs):
        rate = {mode: samples[mode][run][0] for mode in modes}
        floor = 1 / (1 / rate["decode"] + 1 / rate["detect"])
        cpu = {mode: samples[mode][run][1] for mode in modes}
        ratios = {
            "floor": floor,
            "w1/floor": rate["stage w1"] / floor,
            "w1/floor cpu": (cpu["decode"] + cpu["detect"]) / cpu["stage w1"],
        }
        if max_workers >= 2:
            ratios["w2/w1"] = rate["stage w2"] / rate["stage w1"]
            steady = {mode: samples[mode][run][3] for mode in ("stage w1", "stage w2")}
            ratios["w2/w1 steady"] = steady["stage w2"] / steady["stage w1"] if all(steady.values()) else math.nan
            ratios["w2 per core/floor"] = rate["stage w2"] / 2 / floor
        per_run.append(ratios)
    if args.profile:
        profile(manifest, model, settings)
    for mode in sorted(jittery):
        print(
            f"note: {name}, {mode}: in some runs the work took less time than the start-up, so the start-up's "
            f"jitter weighs heavily on its images/s; more images (--limit) give a steadier number"
        )
    return {
        "name": name,
        "n": n,
        "modes": modes,
        "samples": samples,
        "ratios": {k: [r[k] for r in per_run] for k in per_run[0]},
    }


def steady_rate(folder: Path, n: int, shard_size: int, workers: int) -> float | None:
    """Images/s between the moment every worker has finished a shard and the last shard, from the shard files'
    modification times (each is written at the end of its shard): start-up and the first shard excluded."""
    from agenet_pipeline.faces.storage import shard_paths

    done = sorted(
        (p.stat().st_mtime_ns, min(shard_size, n - int(p.stem.split("-")[1]) * shard_size)) for p in shard_paths(folder)
    )
    if len(done) <= workers or done[-1][0] == done[workers - 1][0]:
        return None
    return sum(rows for _, rows in done[workers:]) / ((done[-1][0] - done[workers - 1][0]) / 1e9)


def profile(manifest, model, settings) -> None:
    import cProfile
    import pstats

    from agenet_pipeline.faces.detector import FaceDetector
    from agenet_pipeline.faces.stage import faces_of_rows

    with FaceDetector(model) as detector:
        faces_of_rows(manifest.head(2), detector, settings)
        profiler = cProfile.Profile()
        profiler.enable()
        faces_of_rows(manifest, detector, settings)
        profiler.disable()
    print(f"\ncProfile of faces_of_rows over {manifest.height} images, in process (top 15 by own time):")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def median(values) -> float:
    """The median of the values that are numbers (a run whose start-up outlasted its work gives NaN)."""
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def report(results: list[dict], args, max_workers: int, command: str) -> None:
    import cv2

    print("\n# Face stage throughput\n")
    print(
        f"Machine: {cores()} cores usable, load average {os.getloadavg()[0]:.2f} at the end; "
        f"OpenCV {cv2.__version__} with {cv2.getNumThreads()} thread(s) in this process "
        "(as the stage sets it in each of its processes); "
        f"{args.runs} runs, medians.\n"
    )
    print(
        "| dataset | mode | images | images/s (median) | min-max | ms/img | CPU ms/img | start-up s "
        "| cores busy | steady-state images/s (shard times) | images/s with start-up |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")

    def cell(values, fmt):
        values = [v for v in values if v is not None]
        return format(median(values), fmt) if values else "-"

    for r in results:
        for mode in r["modes"]:
            columns = list(zip(*r["samples"][mode]))
            rates = [v for v in columns[0] if not math.isnan(v)] or [math.nan]
            rate = median(rates)
            print(
                f"| {r['name']} | {mode} | {r['n']} | {rate:.0f} | {min(rates):.0f}-{max(rates):.0f} | "
                f"{1e3 / rate:.2f} | {cell(columns[1], '.2f')} | {cell(columns[2], '.2f')} | "
                f"{cell([r * c / 1e3 for r, c in zip(columns[0], columns[1])], '.2f')} | "
                f"{cell(columns[3], '.0f')} | {cell(columns[4], '.0f')} |"
            )
    print(
        "\n| dataset | floor 1/(1/decode+1/detect) img/s | stage w1 / floor (target >= 0.80) "
        "| same in CPU time |"
        + (
            " stage w2 / stage w1 (target ~2 on 2 cores) | same, steady-state | stage w2 per core / floor |"
            if max_workers >= 2
            else ""
        )
    )
    print("| --- | ---: | ---: | ---: |" + (" ---: | ---: | ---: |" if max_workers >= 2 else ""))
    for r in results:
        q = {k: median(v) for k, v in r["ratios"].items()}
        ok = "met" if q["w1/floor"] >= 0.8 else "NOT met"
        line = f"| {r['name']} | {q['floor']:.0f} | {q['w1/floor']:.2f} ({ok}) | {q['w1/floor cpu']:.2f} |"
        if max_workers >= 2:
            line += f" {q['w2/w1']:.2f} | {q['w2/w1 steady']:.2f} | {q['w2 per core/floor']:.2f} |"
        print(line)
    print(
        "\nCores busy = images/s x CPU ms/img: how much CPU the mode got (by this process and its workers) while "
        "it ran; below the worker count on a shared machine means other processes had the cores."
    )
    print(
        "\nRatios are medians of the per-run ratios; 'same in CPU time' is (decode + detect CPU ms/img) / stage w1 "
        "CPU ms/img, which other processes on the machine disturb less than wall time. Start-up: the time of a "
        "probe run_face_stage over one image per worker (N shards of 1 image); images/s excludes it: "
        "(images - workers) / (T_full - T_probe). Steady-state: images in the shards finished after every worker "
        "had finished one, over the time from then to the last shard (the shard files' modification times)."
    )
    print(f"\nCommand: {command}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ["OPENCV_FOR_THREADS_NUM"] = "1"  # before cv2 is imported: as the stage runs it
    os.environ.setdefault("GLOG_minloglevel", "2")  # quieter MediaPipe / TensorFlow logs, here and in the workers
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    max_workers = args.workers or (2 if cores() >= 2 else 1)
    command = shlex.join(
        [os.path.relpath(sys.executable) if not os.path.isabs(sys.argv[0]) else sys.executable, *sys.argv]
    )
    if max_workers < 2:
        print(f"note: {cores()} core(s): only workers=1 is timed")
    results = []
    with tempfile.TemporaryDirectory(prefix="face-stage-bench-") as tmp:
        for name, manifest in datasets(args, Path(tmp)):
            if manifest.height < max(max_workers, 2):
                print(f"note: {name} has {manifest.height} usable images: skipped")
                continue
            results.append(bench_dataset(name, manifest, args, Path(tmp), max_workers))
    report(results, args, max_workers, command)


if __name__ == "__main__":
    main()
