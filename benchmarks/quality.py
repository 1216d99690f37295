"""Test-set quality of the `seed` recipe against the `recommended` one, trained on the same UTKFace split.

    .venv/bin/python benchmarks/quality.py                         # 64x64, filters x0.25, seed 0
    .venv/bin/python benchmarks/quality.py --seeds 0 1 2           # three trainings per recipe, means and spreads
    .venv/bin/python benchmarks/quality.py --try "cand: base=recommended learning_rate=3e-4 label_sigma=2"

Data: the UTKFace chips at ../shared/data/utkface_part1 (when absent the script prints a note and exits 0), through
the project's own stages (manifest, face stage with the real-data settings: 256 px crops, `fallback_whole_image`,
`assign_splits` with its default 64/16/20 train/validation/test shares, `write_shards`), cached under `--work`
(shared with benchmarks/training.py), so only the first run pays for the face stage.

Every recipe is trained by `training.train` (Adam, cross-entropy, early stopping on validation loss with the best
weights restored) on the same train and validation files, at the same input size (`--input-size`, default 64), and
with every network's conv filters scaled by the same `--width` (default 0.25: the seed's 64..1024 become 16..256;
1.0 is the paper's widths). Nothing else in the recipes is changed, except `--max-epochs` / `--patience` when
given. The test split is then scored with `predict_files` + `metrics.score`: exact bin accuracy, one-off bin
accuracy and MAE in years of the expected age; `metrics.constant_guess` (the most frequent training bin) is the
floor. With several `--seeds`, each recipe is trained once per seed (TrainingConfig.seed: initialisation, shuffle,
augmentation) and the table gives the mean and the spread (min..max).

`--try "NAME: key=value ..."` adds a candidate recipe: `base=seed|recommended` (default recommended) and any field of
ModelConfig or TrainingConfig (tuples as 64,128,...; booleans as 0/1; `none` for None). Filters given there are the
full-width ones and are scaled by `--width` like the others. Each finished training is appended as a JSON line to
`--log` (default <work>/quality-runs.jsonl).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_UTKFACE = HERE.parent.parent / "shared" / "data" / "utkface_part1"
DEFAULT_WORK = Path("/tmp/agenet-bench")


def _training_benchmark():
    """benchmarks/training.py, for its shard preparation (one cache for both benchmarks)."""
    spec = importlib.util.spec_from_file_location("agenet_bench_training", HERE / "training.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input-size", type=int, default=64, help="input side for every recipe")
    parser.add_argument("--width", type=float, default=0.25, help="factor on every network's conv filters")
    parser.add_argument("--recipes", nargs="*", default=["seed", "recommended"], help="names from RECIPES")
    parser.add_argument(
        "--try",
        dest="tries",
        action="append",
        default=[],
        metavar="'NAME: key=value ...'",
        help="a candidate recipe (see the docstring); may be repeated",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds per recipe")
    parser.add_argument("--max-epochs", type=int, default=None, help="override every recipe's epoch limit")
    parser.add_argument("--patience", type=int, default=None, help="override every recipe's early-stopping patience")
    parser.add_argument(
        "--utkface", type=Path, default=DEFAULT_UTKFACE, help="real UTKFace root (default: %(default)s)"
    )
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cache of face crops and shards")
    parser.add_argument("--crop-size", type=int, default=256, help="face crop side in the shards (the asset's default)")
    parser.add_argument(
        "--order",
        choices=("package", "shuffled"),
        default="package",
        help="record order in the shards: the package's (scrambled by write_shards; a cache "
        "written before that change holds UTKFace sorted by age: use a fresh --work) or "
        "shuffled (the manifest shuffled before the face stage; same split)",
    )
    parser.add_argument("--log", type=Path, default=None, help="JSON lines of finished trainings")
    return parser.parse_args(argv)


def _value(text: str, current):
    if text.lower() == "none":
        return None
    if isinstance(current, bool):
        return text.lower() in ("1", "true", "yes")
    if isinstance(current, tuple):
        return tuple(int(v) for v in text.split(",") if v)
    if isinstance(current, int):
        return int(text)
    if isinstance(current, float) or current is None:
        return float(text)
    return text


def candidate(spec: str, recipes: dict):
    """(name, Recipe) from 'NAME: key=value ...' (see the docstring)."""
    from agenet_pipeline.model.recipes import Recipe

    name, _, settings = spec.partition(":")
    pairs = dict(item.split("=", 1) for item in settings.split())
    base = recipes[pairs.pop("base", "recommended")]
    network, training = {}, {}
    for key, text in pairs.items():
        if hasattr(base.network, key):
            network[key] = _value(text, getattr(base.network, key))
        elif hasattr(base.training, key):
            training[key] = _value(text, getattr(base.training, key))
        else:
            raise SystemExit(f"--try {spec!r}: {key} is not a ModelConfig or TrainingConfig field")
    return name.strip(), Recipe(
        dataclasses.replace(base.network, **network), dataclasses.replace(base.training, **training)
    )


def scaled(recipe, input_size: int, width: float, seed: int, max_epochs: int | None, patience: int | None):
    network = dataclasses.replace(
        recipe.network, input_size=input_size, filters=tuple(max(1, round(f * width)) for f in recipe.network.filters)
    )
    changes = {"seed": seed}
    if max_epochs is not None:
        changes["max_epochs"] = max_epochs
    if patience is not None:
        changes["patience"] = patience
    return network, dataclasses.replace(recipe.training, **changes)


def differences(network, training) -> str:
    """The settings that differ from the paper's (seed) recipe, for the table."""
    from agenet_pipeline.model.recipes import RECIPES

    seed = RECIPES["seed"]
    changed = [
        f"{f.name}={getattr(network, f.name)}"
        for f in dataclasses.fields(network)
        if f.name not in ("input_size", "filters") and getattr(network, f.name) != getattr(seed.network, f.name)
    ]
    changed += [
        f"{f.name}={getattr(training, f.name)}"
        for f in dataclasses.fields(training)
        if f.name not in ("seed", "max_epochs", "patience")
        and getattr(training, f.name) != getattr(seed.training, f.name)
    ]
    return ", ".join(changed) or "(the paper's)"


def train_and_score(network, training, files: dict, work: Path) -> dict:
    import keras

    from agenet_pipeline.model.batch_prediction import predict_files
    from agenet_pipeline.model.metrics import score
    from agenet_pipeline.model.training import train

    keras.backend.clear_session()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=work, prefix="quality-ckpt-") as checkpoints:
        result = train(network, training, files["train"], files["validation"], Path(checkpoints))
    trained = time.perf_counter() - started
    keys, probabilities = predict_files(result.model, files["test"])
    scores = score(probabilities, keys["age"].to_numpy())
    return {
        "exact": scores.exact,
        "one_off": scores.one_off,
        "mae": scores.mae,
        "count": scores.count,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "train_s": trained,
        "val_loss": min(result.history["val_loss"]),
        "params": result.model.count_params(),
    }


def summary(values: list[float], digits: int) -> str:
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({min(values):.{digits}f}..{max(values):.{digits}f})"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = ".venv/bin/python benchmarks/quality.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if not args.utkface.is_dir():
        print(
            f"NOTE: {args.utkface} is absent: this benchmark needs the real UTKFace chips "
            "(../shared/data/utkface_part1 beside the project); nothing to measure, exiting."
        )
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    data = _training_benchmark().prepare_shards(
        args.work, args.utkface, args.crop_size, shuffle_rows=args.order == "shuffled"
    )
    files, ages = data["files"], data["ages"]

    from agenet_pipeline.model.metrics import constant_guess
    from agenet_pipeline.model.recipes import RECIPES

    recipes = {name: RECIPES[name] for name in args.recipes}
    for spec in args.tries:
        name, recipe = candidate(spec, RECIPES)
        recipes[name] = recipe
    log = args.log or args.work / "quality-runs.jsonl"
    print(
        f"{data['source']}: train {len(ages['train'])}, validation {len(ages['validation'])}, "
        f"test {len(ages['test'])} photos; input {args.input_size}x{args.input_size}; conv filters x{args.width} "
        f"for every recipe; seeds {args.seeds}; runs logged to {log}",
        flush=True,
    )

    results: dict[str, list[dict]] = {name: [] for name in recipes}
    settings: dict[str, str] = {}
    total = time.perf_counter()
    for seed in args.seeds:
        for name, recipe in recipes.items():
            network, training = scaled(recipe, args.input_size, args.width, seed, args.max_epochs, args.patience)
            settings[name] = f"filters {network.filters}; {differences(network, training)}"
            print(f"\n=== {name} (seed {seed}): {network} {training}", flush=True)
            result = train_and_score(network, training, files, args.work)
            results[name].append(result)
            print(
                f"=== {name} (seed {seed}): exact {result['exact']:.3f}, one-off {result['one_off']:.3f}, "
                f"MAE {result['mae']:.2f} y, {result['epochs']} epochs (best {result['best_epoch']}), "
                f"{result['train_s']:.0f} s",
                flush=True,
            )
            with open(log, "a") as f:
                f.write(
                    json.dumps(
                        {
                            "recipe": name,
                            "seed": seed,
                            "order": args.order,
                            "input_size": args.input_size,
                            "width": args.width,
                            "network": dataclasses.asdict(network),
                            "training": dataclasses.asdict(training),
                            **result,
                        }
                    )
                    + "\n"
                )

    chance = constant_guess(ages["train"], ages["test"])
    print(
        f"\n## Test quality on UTKFace ({data['source']}, {len(ages['test'])} test photos, {args.order} record "
        f"order), input "
        f"{args.input_size}x{args.input_size}, conv filters x{args.width} (the paper's 64..1024 scaled), "
        f"{'mean (min..max) over seeds ' + str(args.seeds) if len(args.seeds) > 1 else 'seed ' + str(args.seeds[0])}\n"
    )
    print("| recipe | exact accuracy | one-off accuracy | MAE (years) | epochs (best) | train time (s) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, rows in results.items():
        print(
            f"| {name} | {summary([r['exact'] for r in rows], 3)} | {summary([r['one_off'] for r in rows], 3)} | "
            f"{summary([r['mae'] for r in rows], 2)} | "
            f"{', '.join(str(r['epochs']) + ' (' + str(r['best_epoch']) + ')' for r in rows)} | "
            f"{statistics.fmean([r['train_s'] for r in rows]):.0f} |"
        )
    print(
        f"| constant guess (most frequent training bin) | {chance.exact:.3f} | {chance.one_off:.3f} | "
        f"{chance.mae:.2f} | - | - |"
    )
    print("\nSettings (beyond the input size and filters, what differs from the paper's recipe):")
    for name, text in settings.items():
        print(f"- {name}: {text}")
    if "seed" in results:
        seed_means = {k: statistics.fmean([r[k] for r in results["seed"]]) for k in ("exact", "one_off", "mae")}
        for name, rows in results.items():
            if name == "seed":
                continue
            means = {k: statistics.fmean([r[k] for r in rows]) for k in ("exact", "one_off", "mae")}
            wins = [
                means["exact"] > seed_means["exact"],
                means["one_off"] > seed_means["one_off"],
                means["mae"] < seed_means["mae"],
            ]
            verdict = (
                "better on all three"
                if all(wins)
                else ("NOT better on: " + ", ".join(m for m, w in zip(("exact", "one-off", "MAE"), wins) if not w))
            )
            print(
                f"Target, {name} better than seed on exact, one-off and MAE: {verdict} "
                f"(exact {means['exact'] - seed_means['exact']:+.3f}, one-off "
                f"{means['one_off'] - seed_means['one_off']:+.3f}, MAE {means['mae'] - seed_means['mae']:+.2f} y)"
            )
    print(f"\nTotal time {time.perf_counter() - total:.0f} s. Command: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
