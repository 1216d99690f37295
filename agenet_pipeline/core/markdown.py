"""Markdown for people: tables of a frame, and PNG images inline."""

from __future__ import annotations

import base64

import polars as pl


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def table(frame: pl.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    return header + "".join("| " + " | ".join(_cell(v) for v in row) + " |\n" for row in frame.iter_rows())


def inline_png(png: bytes, title: str) -> str:
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"
