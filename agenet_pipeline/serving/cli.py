"""The `agenet` command: ages for photos, the live webcam demo, and the registered model versions.

Libraries are imported inside the commands, so that `agenet --help` answers at once (and no Dagster is loaded).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from agenet_pipeline.core.home import TRACKING_VARIABLE, Home
from agenet_pipeline.core.home import tracking_uri as home_tracking_uri

DEFAULT_MODEL = "models:/agenet@champion"
SYNTHETIC_WARNING = (
    "warning: {model} was trained on synthetic demo faces ({datasets}), not on real photos: its ages are not "
    "meaningful for real people. Train it on your datasets (README, Use real datasets)."
)


LIGHT_RUNTIME = (
    "the light runtime (agenet-lite) runs only `agenet predict --model <bundle folder>`: install agenet-pipeline for "
    "the rest"
)


class CommandError(Exception):
    """A problem the user can fix; printed without a traceback."""


def tracking_uri(option: str | None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else the pipeline's default store under the home folder
    ($AGENET_HOME or .agenet in the working directory, as the Dagster resources have it)."""
    return option or os.environ.get(TRACKING_VARIABLE) or home_tracking_uri(None, Home.at())


def _use_store(option: str | None) -> str:
    from agenet_pipeline.tracking.store import connect

    uri = tracking_uri(option)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise CommandError(
            f"there is no MLflow store at {uri.removeprefix('sqlite:///')}: run the full job first (README, Quick "
            "start) in this folder, or point --tracking-uri, $MLFLOW_TRACKING_URI or $AGENET_HOME at the store"
        )
    connect(uri)
    return uri


def _load(model_uri: str, store: str | None):
    """The served pyfunc model and its age bins."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from agenet_pipeline.core.ages import SCHEMES

    uri = _use_store(store)
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except MlflowException as error:
        raise CommandError(f"cannot load {model_uri} from {uri}: {error.message}") from error
    config = model.metadata.flavors["python_function"].get("config") or {}
    if config.get("bins") not in SCHEMES:
        raise CommandError(f"{model_uri} is not an AgeNet serving model (photos in, ages out)")
    _warn_if_synthetic(model_uri)
    return model, SCHEMES[config["bins"]]


def _warn_if_synthetic(model_uri: str) -> None:
    from mlflow.exceptions import MlflowException

    from agenet_pipeline.tracking.registry import SYNTHETIC_TAG, data_tags

    try:
        tags = data_tags(model_uri)
    except MlflowException:  # a URI the registry cannot resolve was loaded all the same: nothing to say about it
        return
    if tags.get(SYNTHETIC_TAG) == "true":
        print(SYNTHETIC_WARNING.format(model=model_uri, datasets=tags.get("data.datasets", "?")), file=sys.stderr)


def predict(args: argparse.Namespace) -> None:
    if Path(args.model).is_dir():
        return predict_with_bundle(args)
    from tqdm import tqdm

    from agenet_pipeline.serving.photos import OUTPUT_FORMATS, predict_photos, write_table
    from agenet_pipeline.serving.predictor import photo_files

    if args.output and args.output.suffix.lower() not in OUTPUT_FORMATS:
        raise CommandError(f"--output must end in {', '.join(OUTPUT_FORMATS)}: {args.output}")
    try:
        files = photo_files(args.paths)
    except FileNotFoundError as error:
        raise CommandError(str(error)) from error
    model, bins = _load(args.model, args.tracking_uri)
    with tqdm(total=len(files), unit="photo", file=sys.stderr, disable=None) as bar:
        table = predict_photos(model, files, bins, args.aligned, args.batch_size, bar.update)
    if args.output:
        write_table(table, args.output)
    else:
        table.write_csv(sys.stdout)
    if args.annotate:
        from agenet_pipeline.faces.settings import FaceSettings
        from agenet_pipeline.serving.annotate import write_annotated

        annotated = write_annotated(table, files, args.annotate, FaceSettings().max_pixels)
        print(f"{annotated} annotated photos written to {args.annotate}", file=sys.stderr)
    print(summary(len(files), dict(table.group_by("status").len().iter_rows()), args.output), file=sys.stderr)


def summary(files: int, counts: dict[str, int], output: Path | None) -> str:
    """The closing line of `predict`: faces, files without one, and the rejected files by reason."""
    from agenet_pipeline.core.status import NO_FACE, OK

    counts = dict(counts)
    faces, no_face = counts.pop(OK, 0), counts.pop(NO_FACE, 0)
    rejected = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())) or "none"
    return f"{files} files: {faces} faces, {no_face} files without a face, rejected: {rejected}" + (
        f"; written to {output}" if output else ""
    )


def predict_with_bundle(args: argparse.Namespace) -> None:
    """`agenet predict --model <bundle folder>`: the light runtime (ONNX Runtime or LiteRT; no TensorFlow, MLflow or
    Dagster), the same rows and reasons as the served model."""
    from collections import Counter

    from agenet_pipeline.serving.bundle import Bundle, BundleError, columns, predict_files
    from agenet_pipeline.serving.predictor import photo_files

    if args.annotate or (args.output and args.output.suffix.lower() not in (".csv", ".json")):
        raise CommandError("with a bundle folder, agenet predict writes a .csv or .json table (no --annotate)")
    try:
        files = photo_files(args.paths)
        bundle = Bundle.open(args.model)
        predictor = bundle.predictor(args.network, args.threads)
    except (FileNotFoundError, BundleError) as error:
        raise CommandError(str(error)) from error
    try:
        rows = predict_files(predictor, files, args.aligned)
    finally:
        predictor.close()
    write_rows(rows, columns(bundle.bins), args.output)
    counts = Counter(row["status"] for row in rows)
    print(summary(len(files), counts, args.output), file=sys.stderr)


def write_rows(rows: list[dict], names: list[str], output: Path | None) -> None:
    """Rows as CSV (on stdout without `output`) or as a JSON array of row objects, with the standard library."""
    import json

    if output and output.suffix.lower() == ".json":
        output.write_text(json.dumps([{name: row.get(name) for name in names} for row in rows], indent=1))
        return
    if output is None:
        _write_csv(rows, names, sys.stdout)
        return
    with open(output, "w", newline="") as stream:
        _write_csv(rows, names, stream)


def _write_csv(rows: list[dict], names: list[str], stream) -> None:
    import csv

    writer = csv.DictWriter(stream, names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def export(args: argparse.Namespace) -> None:
    from mlflow.exceptions import MlflowException

    from agenet_pipeline.serving.exports import FORMATS, NotAnAgeNetModel, export_model

    uri = _use_store(args.tracking_uri)
    try:
        manifest = export_model(
            args.model, args.output, args.format or tuple(FORMATS), args.calibration, log=not args.no_log
        )
    except MlflowException as error:
        raise CommandError(f"cannot export {args.model} from {uri}: {error.message}") from error
    except (NotAnAgeNetModel, FileExistsError, FileNotFoundError, ValueError) as error:
        raise CommandError(str(error)) from error
    print(f"{', '.join(manifest['networks'])} written to {args.output}", file=sys.stderr)


def webcam(args: argparse.Namespace) -> None:
    import time

    from agenet_pipeline.serving.webcam import run

    if args.output and args.output.suffix.lower() != ".mp4":
        raise CommandError(f"--output must be an .mp4 file: {args.output}")
    model, _ = _load(args.model, args.tracking_uri)
    predictor = model.unwrap_python_model().predictor
    started = time.perf_counter()
    try:
        frames = run(predictor, args.source, not args.no_display, args.output, sys.stdout)
    except OSError as error:
        raise CommandError(str(error)) from error
    seconds = time.perf_counter() - started
    print(f"{frames} frames in {seconds:.1f} s ({frames / max(seconds, 1e-9):.1f} frames/s)", file=sys.stderr)
    if args.output:
        print(f"written to {args.output}", file=sys.stderr)


def models(args: argparse.Namespace) -> None:
    from agenet_pipeline.tracking.registry import card_headlines, model_versions

    _use_store(args.tracking_uri)
    versions = model_versions(args.name)
    if not versions:
        raise CommandError(f"no registered model {args.name!r} in {tracking_uri(args.tracking_uri)}")
    print(text_table(versions))
    headlines = card_headlines(args.name)
    if headlines:
        print("\nModel cards (evaluation/model_card.md in each version's run):")
        print("\n".join(headlines.values()))
    synthetic = [row["version"] for row in versions if row["synthetic"] == "true"]
    if synthetic:
        print(SYNTHETIC_WARNING.format(model=f"version(s) {', '.join(synthetic)}", datasets="demo"), file=sys.stderr)


def text_table(rows: list[dict[str, str]]) -> str:
    """Rows as aligned columns under a header."""
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(row[c]) for row in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(row[c].ljust(widths[c]) for c in columns) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def parser() -> argparse.ArgumentParser:
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument(
        "--tracking-uri",
        help="MLflow tracking and registry URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<home>/mlflow.db "
        "with home $AGENET_HOME or ./.agenet)",
    )
    served = argparse.ArgumentParser(add_help=False, parents=[store])
    served.add_argument("--model", default=DEFAULT_MODEL, help="model URI (default: %(default)s)")

    main_parser = argparse.ArgumentParser(prog="agenet", description="Facial age estimation with the AgeNet model.")
    commands = main_parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("predict", parents=[served], help="ages for photos: a row per face")
    p.add_argument("paths", nargs="+", type=Path, help="photo files or folders (walked recursively)")
    p.add_argument("--output", type=Path, help="a .csv, .json or .parquet file (default: CSV on stdout)")
    p.add_argument("--annotate", type=Path, metavar="DIR", help="also write each photo with its faces and ages drawn")
    p.add_argument("--aligned", action="store_true", help="the photos are face crops: no detection, one row each")
    p.add_argument("--batch-size", type=int, default=64, help="photos per call of the model (default: %(default)s)")
    p.add_argument(
        "--network",
        choices=("onnx", "tflite_float32", "tflite_float16", "tflite_int8"),
        help="with a bundle folder as --model: the network to run (default: onnx, else tflite_float32)",
    )
    p.add_argument("--threads", type=int, help="with a bundle folder as --model: the runtime's threads")
    p.set_defaults(run=predict)

    e = commands.add_parser("export", parents=[served], help="a bundle of the model for TFLite, ONNX, SavedModel")
    e.add_argument("--output", type=Path, required=True, metavar="DIR", help="the bundle folder (new or empty)")
    e.add_argument(
        "--format",
        action="append",
        choices=("tflite", "onnx", "saved_model"),
        help="repeat for several (default: all; tflite is float32, float16 and int8)",
    )
    e.add_argument(
        "--calibration",
        nargs="+",
        type=Path,
        default=(),
        metavar="PHOTO",
        help="photos to calibrate the int8 network on (default: the training crops of the version's datasets)",
    )
    e.add_argument("--no-log", action="store_true", help="do not log the bundle to the version's MLflow run")
    e.set_defaults(run=export)

    w = commands.add_parser("webcam", parents=[served], help="the live demo: ages drawn on a camera or video")
    w.add_argument("--source", default="0", help="a camera number or a video file (default: %(default)s)")
    w.add_argument("--no-display", action="store_true", help="no window: write --output, or print ages per frame")
    w.add_argument("--output", type=Path, help="write the annotated video to this .mp4 file")
    w.set_defaults(run=webcam)

    m = commands.add_parser("models", parents=[store], help="registered versions, aliases and test scores")
    m.add_argument("--name", default="agenet", help="registered model name (default: %(default)s)")
    m.set_defaults(run=models)
    return main_parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except CommandError as error:
        print(f"agenet {args.command}: {error}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as error:  # the light runtime (lite/) installs only what a bundle folder needs
        print(f"agenet {args.command}: {error.name} is not installed; {LIGHT_RUNTIME}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
