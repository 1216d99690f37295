import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agenet_pipeline.core.ages import (
    ADIENCE_BINS,
    MAX_AGE,
    MIN_AGE,
    SCHEMES,
    SEED_BINS,
    YEARS,
    AgeBins,
    answered_age,
    in_bins,
    median_year,
    output_bins,
    predicted_bins,
)

valid_ages = st.floats(min_value=MIN_AGE, max_value=MAX_AGE, allow_nan=False)
schemes = st.sampled_from([SEED_BINS, ADIENCE_BINS])


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (0, 0),
        (2, 0),
        (2.5, 0),
        (3, 1),
        (6, 1),
        (7, 2),
        (12, 2),
        (13, 3),
        (17, 3),
        (18, 4),
        (22, 4),
        (23, 5),
        (26, 5),
        (27, 6),
        (33, 6),
        (34, 7),
        (44, 7),
        (45, 8),
        (59, 8),
        (60, 9),
        (120, 9),
    ],
)
def test_seed_scheme_boundaries(age, expected):
    assert SEED_BINS.index(age) == expected


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (0, 0),
        (2, 0),
        (3, 0),
        (4, 1),
        (6, 1),
        (7, 2),
        (12, 2),
        (13, 2),
        (14, 3),
        (20, 3),
        (22, 3),
        (24, 4),
        (32, 4),
        (36, 5),
        (43, 5),
        (45, 5),
        (46, 6),
        (53, 6),
        (57, 7),
        (120, 7),
    ],
)
def test_adience_scheme_cut_points_and_gaps(age, expected):
    assert ADIENCE_BINS.index(age) == expected


def _label_range(label: str) -> tuple[float, float]:
    low, _, high = label.rstrip("+").partition("-")
    return float(low), float(high or MAX_AGE)


def test_adience_whole_ages_in_a_gap_go_to_the_nearer_bin_except_23():
    ranges = [_label_range(label) for label in ADIENCE_BINS.labels]
    for age in range(int(MAX_AGE) + 1):
        distances = [max(low - age, 0, age - high) for low, high in ranges]
        nearest = sorted(range(len(ranges)), key=distances.__getitem__)[:2]
        if distances[nearest[0]] < distances[nearest[1]]:
            # The published cut point 24 puts 23 (2 years from 25-32, 3 from 15-20) with 15-20.
            expected = 3 if age == 23 else nearest[0]
            assert ADIENCE_BINS.index(age) == expected, f"age {age}"


def test_index_of_many_ages_at_once():
    assert SEED_BINS.index([0, 17.9, 18, 64]).tolist() == [0, 3, 4, 9]


def test_the_schemes():
    assert len(SEED_BINS) == 10 and len(ADIENCE_BINS) == 8
    assert SCHEMES == {"seed": SEED_BINS, "adience": ADIENCE_BINS}


@pytest.mark.parametrize("bins", [SEED_BINS, ADIENCE_BINS], ids=lambda b: b.name)
@pytest.mark.parametrize(
    ("age", "named"),
    [(-3, "-3"), (250, "250"), (math.nan, "nan"), (math.inf, "inf"), (-0.01, "-0.01"), (120.5, "120.5")],
)
def test_invalid_ages_raise_naming_the_age(bins, age, named):
    with pytest.raises(ValueError, match=rf"age {named}"):
        bins.index(age)


def test_an_invalid_age_among_valid_ones_is_named():
    with pytest.raises(ValueError, match="age 250"):
        SEED_BINS.index([30, 250, 40])


def test_expected_age_weights_the_midpoints():
    one_hot = np.eye(len(SEED_BINS))

    assert SEED_BINS.expected_age(one_hot).tolist() == list(SEED_BINS.midpoints)
    assert SEED_BINS.expected_age([0.5, 0.5, 0, 0, 0, 0, 0, 0, 0, 0]) == pytest.approx((1.0 + 4.5) / 2)
    assert ADIENCE_BINS.expected_age([0, 0, 0, 0, 0.25, 0.75, 0, 0]) == pytest.approx(0.25 * 28.5 + 0.75 * 40.5)


@pytest.mark.parametrize(("cut_points", "midpoints"), [((1, 5), (2, 6)), ((0, 5, 5), (1, 5, 6)), ((0, 5), (1,))])
def test_inconsistent_schemes_are_refused(cut_points, midpoints):
    with pytest.raises(ValueError, match="broken"):
        AgeBins(name="broken", labels=("a",) * len(cut_points), cut_points=cut_points, midpoints=midpoints)


@given(schemes, valid_ages)
def test_every_valid_age_falls_in_its_bin(bins, age):
    i = int(bins.index(age))

    assert 0 <= i < len(bins)
    assert bins.cut_points[i] <= age
    assert i == len(bins) - 1 or age < bins.cut_points[i + 1]


@given(schemes, valid_ages, valid_ages)
def test_index_is_monotonic_in_age(bins, a, b):
    low, high = sorted((a, b))

    assert bins.index(low) <= bins.index(high)


@given(valid_ages)
def test_a_year_falls_in_the_paper_bin_of_its_age(age):
    year = int(YEARS.index(age))

    assert YEARS.coarsening(SEED_BINS)[year].tolist() == np.eye(len(SEED_BINS))[SEED_BINS.index(age)].tolist()


def test_a_per_year_output_sums_into_the_paper_bins_and_answers_its_median_age():
    years = np.zeros((3, len(YEARS)))
    years[0, [2, 3]] = 0.5  # half in 0-2, half in 3-6
    years[1, [64, 70, 90]] = [0.2, 0.5, 0.3]  # all 60+, the paper's midpoint 70; the mean would say 73.3
    years[2, 41] = 1.0

    assert output_bins(years) == YEARS and output_bins(np.eye(len(SEED_BINS))) == SEED_BINS
    assert in_bins(years)[:2].tolist() == [[0.5, 0.5, *[0.0] * 8], [*[0.0] * 9, 1.0]]
    assert median_year(years).tolist() == [2, 70, 41]
    # From half a year before the median year to half a year after, by where the half falls in its probability.
    assert answered_age(years).tolist() == pytest.approx([2.5, 70.1, 41.0])
    assert answered_age(years[1]) == pytest.approx(70.1)
    assert answered_age(np.eye(len(SEED_BINS))[[0, 9]]).tolist() == [1.0, 70.0]  # ten bins: the expected age
    assert in_bins(np.eye(len(SEED_BINS))).tolist() == np.eye(len(SEED_BINS)).tolist()
    assert in_bins(years, ADIENCE_BINS)[0].tolist() == [1.0, *[0.0] * 7]


def test_the_bin_of_a_per_year_output_is_that_of_its_age_and_of_a_bins_output_the_most_probable():
    years = np.zeros((2, len(YEARS)))
    years[0, [20, 24, 30]] = [0.3, 0.3, 0.4]  # 27-33 is the most probable bin; the median year, 24, is in 23-26
    years[1, 64] = 1.0
    bins = np.eye(len(SEED_BINS))[[2, 9]] * 0.6 + 0.04

    assert predicted_bins(years).tolist() == [5, 9] and in_bins(years)[0].argmax() == 6
    assert predicted_bins(years[0]) == 5
    assert predicted_bins(bins).tolist() == [2, 9]


@given(st.lists(st.floats(0, 1), min_size=len(YEARS), max_size=len(YEARS)).filter(lambda w: sum(w) > 1e-3))
def test_the_median_age_lies_in_the_half_year_around_the_median_year_whose_bin_is_answered(weights):
    p = np.array(weights) / sum(weights)
    year = int(median_year(p))

    assert p[:year].sum() < 0.5 + 1e-9 and p[: year + 1].sum() >= 0.5 - 1e-9
    assert year - 0.5 - 1e-9 <= answered_age(p) <= year + 0.5 + 1e-9
    assert predicted_bins(p) == SEED_BINS.index(year)


def test_bins_that_do_not_nest_cannot_be_summed_into():
    with pytest.raises(ValueError, match="adience bins are not unions of seed bins"):
        SEED_BINS.coarsening(ADIENCE_BINS)


def test_an_output_of_no_known_width_is_refused():
    with pytest.raises(ValueError, match="an output of 8 probabilities: an age network outputs 10 .seed. or 101"):
        answered_age(np.zeros((3, 8)))
