"""Ages for photo files (`predictor.photo_files`): the served model run in batches, a row per face or unusable file."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import polars as pl

from agenet_pipeline.core.ages import AgeBins
from agenet_pipeline.core.status import ERROR, NO_FACE
from agenet_pipeline.serving.pyfunc import OUTPUT_COLUMNS

POLARS_TYPES = {"long": pl.Int64, "string": pl.String, "double": pl.Float64}


def table_schema(bins: AgeBins) -> dict[str, pl.DataType]:
    """The served model's columns, with the file instead of the batch position and a column per bin's
    probability instead of their list."""
    answer = {
        name: POLARS_TYPES[kind] for name, kind in OUTPUT_COLUMNS.items() if name not in ("input", "probabilities")
    }
    return {"file": pl.String, **answer, **{f"p_{label}": pl.Float64 for label in bins.labels}}


def path_text(text: str | Path) -> str:
    """A file name (or a text holding one) as valid UTF-8, for the table: a name that is not UTF-8 keeps its bytes
    as backslash escapes (`\\xff`), so that it stays distinct from other names and its bytes can be read back.
    Names that are UTF-8 are unchanged (a name that itself contains a backslash followed by `x` and two hex digits
    is then indistinguishable from an escaped byte)."""
    try:
        raw = os.fsencode(text)  # the undecodable bytes of a name come back from the surrogate escapes of os.fsdecode
    except UnicodeEncodeError:  # a surrogate that is no escaped byte
        return str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def _rows(file: Path, answers: list[dict], bins: AgeBins) -> list[dict]:
    """The model's rows for one file with the probabilities spread into a column per bin; a `no_face` row
    when the model found no face, so that every file appears in the table."""
    rows = []
    for answer in answers or [{"status": NO_FACE}]:
        probabilities = answer.pop("probabilities", None) or [None] * len(bins)
        if isinstance(answer.get("detail"), str):  # a rejection's detail may name the file
            answer["detail"] = path_text(answer["detail"])
        rows.append(
            {**answer, "file": path_text(file), **{f"p_{label}": p for label, p in zip(bins.labels, probabilities)}}
        )
    return rows


def _answers(model, files: Sequence[Path], aligned: bool) -> dict[int, list[dict]]:
    """The model's rows for a batch of files, by position. When the model fails for the batch, each file is asked
    alone, and a file the model fails for gets one `error` row naming the exception: the other files' rows stay."""
    # Python objects, not pandas' Arrow strings, which cannot hold a name that is not UTF-8 (os.fsdecode's escapes);
    # absolute, so that with $AGENET_SERVE_ALLOWED_ROOT set a relative path is still the file the user named.
    paths = pd.Series([str(f.absolute()) for f in files], dtype=object)
    try:
        answer: pd.DataFrame = model.predict(pd.DataFrame({"path": paths}), params={"aligned": aligned})
    except Exception as error:  # noqa: BLE001 - one file's failure must not lose the batch
        if len(files) == 1:
            return {0: [{"status": ERROR, "detail": f"{type(error).__name__}: {error}"}]}
        return {i: _answers(model, [file], aligned).get(0, []) for i, file in enumerate(files)}
    per_input: dict[int, list[dict]] = {}
    for record in answer.to_dict("records"):
        per_input.setdefault(record.pop("input"), []).append(record)
    return per_input


def predict_photos(
    model,
    files: Sequence[Path],
    bins: AgeBins,
    aligned: bool = False,
    batch_size: int = 64,
    progress: Callable[[int], object] = lambda done: None,
) -> pl.DataFrame:
    """A row per face of each file (`model`: the served pyfunc model), or one row saying why it has none (`error`
    when the model failed for it); `progress` is told each batch's size."""
    rows = []
    for start in range(0, len(files), batch_size):
        batch = files[start : start + batch_size]
        per_input = _answers(model, batch, aligned)
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
