"""Ages for photo files: folders walked, the served model run in batches, one row per face or per unusable file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import polars as pl

from agenet_pipeline.core.ages import AgeBins
from agenet_pipeline.core.status import NO_FACE
from agenet_pipeline.serving.pyfunc import OUTPUT_COLUMNS


def photo_files(paths: Sequence[str | Path]) -> list[Path]:
    """The files named and every file under the folders named (recursively, hidden ones left out), in order."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = (f for f in path.rglob("*") if f.is_file())
            files += sorted(f for f in found if not any(part.startswith(".") for part in f.relative_to(path).parts))
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return files


POLARS_TYPES = {"long": pl.Int64, "string": pl.String, "double": pl.Float64}


def table_schema(bins: AgeBins) -> dict[str, pl.DataType]:
    """The served model's columns, with the file instead of the batch position and a column per bin's
    probability instead of their list."""
    answer = {
        name: POLARS_TYPES[kind] for name, kind in OUTPUT_COLUMNS.items() if name not in ("input", "probabilities")
    }
    return {"file": pl.String, **answer, **{f"p_{label}": pl.Float64 for label in bins.labels}}


def _rows(file: Path, answers: list[dict], bins: AgeBins) -> list[dict]:
    """The model's rows for one file with the probabilities spread into a column per bin; a `no_face` row
    when the model found no face, so that every file appears in the table."""
    rows = []
    for answer in answers or [{"status": NO_FACE}]:
        probabilities = answer.pop("probabilities", None) or [None] * len(bins)
        rows.append({**answer, "file": str(file), **{f"p_{label}": p for label, p in zip(bins.labels, probabilities)}})
    return rows


def predict_photos(
    model,
    files: Sequence[Path],
    bins: AgeBins,
    aligned: bool = False,
    batch_size: int = 64,
    progress: Callable[[int], object] = lambda done: None,
) -> pl.DataFrame:
    """A row per face of each file (`model`: the served pyfunc model); `progress` is told each batch's size."""
    rows = []
    for start in range(0, len(files), batch_size):
        batch = files[start : start + batch_size]
        # Absolute, so that with $AGENET_SERVE_ALLOWED_ROOT set a relative path is still the file the user named.
        paths = pd.DataFrame({"path": [str(f.absolute()) for f in batch]})
        answer: pd.DataFrame = model.predict(paths, params={"aligned": aligned})
        per_input: dict[int, list[dict]] = {}
        for record in answer.to_dict("records"):
            per_input.setdefault(record.pop("input"), []).append(record)
        for index, file in enumerate(batch):
            rows += _rows(file, per_input.get(index, []), bins)
        progress(len(batch))
    schema = table_schema(bins)
    return pl.DataFrame(rows, schema=schema).select(list(schema))


OUTPUT_FORMATS = (".csv", ".json", ".parquet")


def write_table(table: pl.DataFrame, path: Path) -> None:
    """CSV, JSON (an array of row objects) or Parquet, chosen by the file's extension; written atomically."""
    from agenet_pipeline.core.files import atomic_path

    writers = dict(zip(OUTPUT_FORMATS, (table.write_csv, table.write_json, table.write_parquet)))
    if path.suffix.lower() not in writers:
        raise ValueError(f"{path}: the output must end in {', '.join(OUTPUT_FORMATS)}")
    with atomic_path(path, suffix=path.suffix) as tmp:
        writers[path.suffix.lower()](tmp)
