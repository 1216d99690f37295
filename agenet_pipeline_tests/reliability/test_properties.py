"""Properties of the readers' parsing, of AgeBins and of the row accounting, over generated inputs.

(AgeBins' index being monotone and every valid age falling in its own bin: agenet_pipeline_tests/model/test_bins.py.)
"""

import math
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agenet_pipeline.core.ages import ADIENCE_BINS, MAX_AGE, MIN_AGE, SEED_BINS
from agenet_pipeline.datasets import adience
from agenet_pipeline.datasets.adience import parse_age, read_adience
from agenet_pipeline.datasets.reconciliation import reconcile_splits
from agenet_pipeline.datasets.splits import assign_splits
from agenet_pipeline.datasets.utkface import GENDERS, RACES, parse_name
from agenet_pipeline_tests.formats import label_rows as rows
from agenet_pipeline_tests.formats import labels

ages = st.integers(0, 120)
digits = st.text("0123456789", min_size=1, max_size=20)


@given(ages, st.sampled_from(sorted(GENDERS)), st.none() | st.sampled_from(sorted(RACES)), digits)
def test_utkface_names_give_back_their_labels(age, gender, race, taken_at):
    name = f"{age}_{gender}_{'' if race is None else f'{race}_'}{taken_at}.jpg.chip.jpg"

    assert parse_name(name) == {
        "age": float(age),
        "gender": GENDERS[gender],
        "race": None if race is None else RACES[race],
        "taken_at": taken_at,
    }


@given(st.text(max_size=60))
def test_any_file_name_parses_or_is_refused(name):
    labels = parse_name(name)

    assert labels is None or (name.endswith(".jpg.chip.jpg") and set(labels) == {"age", "gender", "race", "taken_at"})


@given(st.integers(0, 100), st.integers(0, 100), st.sampled_from(["({}, {})", "({},{})", " ( {} , {} ) "]))
def test_adience_ranges_give_back_their_bounds(a, b, form):
    low, high = sorted((a, b))

    assert parse_age(form.format(low, high)) == (low, high)
    assert parse_age(form.format(high, low)) == (None if low < high else (low, high))


@given(st.text(max_size=20))
def test_any_adience_age_field_is_a_range_or_refused(text):
    parsed = parse_age(text)

    assert parsed is None or (math.isfinite(parsed[0]) and parsed[0] <= parsed[1])


# Any text but the separators: tabs between fields, and what str.splitlines() takes for a line end.
fields = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
    max_size=12,
)
lines = (
    (st.lists(fields, min_size=12, max_size=12) | st.lists(fields, min_size=1, max_size=14))
    .map("\t".join)
    .filter(str.strip)
)


@settings(max_examples=60, deadline=None)
@given(st.lists(lines, max_size=8))
def test_every_adience_line_becomes_one_row_with_a_status(fold_lines):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        header = "\t".join(adience.HEADER)
        for fold in range(adience.FOLDS):
            content = "\n".join([header, *(fold_lines if fold == 0 else [])]) + "\n"
            (root / f"fold_{fold}_data.txt").write_text(content, encoding="utf-8")

        manifest = read_adience(root)

    assert manifest.height == len(fold_lines)
    assert manifest["status"].is_not_null().all()
    assert manifest.filter(manifest["status"] != "ok")["detail"].is_not_null().all()


@given(st.sampled_from([SEED_BINS, ADIENCE_BINS]), st.data())
def test_expected_age_lies_between_the_lowest_and_highest_midpoint(bins, data):
    weights = data.draw(
        st.lists(st.floats(0, 1), min_size=len(bins), max_size=len(bins)).filter(lambda w: sum(w) > 1e-6)
    )
    p = np.array(weights) / sum(weights)

    age = float(bins.expected_age(p))

    assert min(bins.midpoints) - 1e-9 <= age <= max(bins.midpoints) + 1e-9
    assert MIN_AGE <= age <= MAX_AGE
    assert 0 <= int(bins.index(min(max(age, MIN_AGE), MAX_AGE))) < len(bins)


@settings(max_examples=100, deadline=None)
@given(rows, st.integers(0, 3))
def test_any_split_of_any_table_reconciles(table_rows, seed):
    table = labels(table_rows)

    result = reconcile_splits(table.select("dataset", "row", "status"), assign_splits(table, seed=seed))

    assert result.passed, result.problems
