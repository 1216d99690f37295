"""Ages and age bins: the one mapping from ages to classes, shared by training, evaluation, cleaning and serving,
and the check that an age label can be used."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agenet_pipeline.core.status import LABEL_OUT_OF_RANGE, MISSING_LABEL

MIN_AGE = 0.0
MAX_AGE = 120.0


@dataclass(frozen=True)
class AgeBins:
    """Contiguous age classes. `cut_points[i]` is the first age of bin i; the last bin is open-ended.

    Gapped schemes (Adience: 0-2, 4-6, ...) are expressed by their cut points: an age in a gap goes to
    the bin whose cut point it has passed. With DESIGN.md's Adience cut points that is the nearer bin (or
    either of two equally near), except age 23, which the cut point 24 sends to 15-20.
    """

    name: str
    labels: tuple[str, ...]
    cut_points: tuple[float, ...]
    midpoints: tuple[float, ...]

    def __post_init__(self) -> None:
        if not (len(self.labels) == len(self.cut_points) == len(self.midpoints)):
            raise ValueError(f"{self.name}: labels, cut points and midpoints differ in length")
        if self.cut_points[0] != MIN_AGE or any(b <= a for a, b in zip(self.cut_points, self.cut_points[1:])):
            raise ValueError(f"{self.name}: cut points must start at {MIN_AGE} and increase: {self.cut_points}")

    def __len__(self) -> int:
        return len(self.labels)

    def index(self, ages) -> np.ndarray:
        """Bin index of each age; raises ValueError naming the first age that is not a valid age."""
        ages = np.asarray(ages, dtype=np.float64)
        invalid = ~np.isfinite(ages) | (ages < MIN_AGE) | (ages > MAX_AGE)
        if invalid.any():
            bad = ages[invalid].flat[0]
            raise ValueError(f"age {bad} is outside [{MIN_AGE:g}, {MAX_AGE:g}] and has no {self.name} bin")
        return np.searchsorted(self.cut_points, ages, side="right").astype(np.int64) - 1

    def expected_age(self, probabilities) -> np.ndarray:
        """The paper's age estimate: bin midpoints weighted by the predicted bin probabilities."""
        return np.asarray(probabilities, dtype=np.float64) @ np.asarray(self.midpoints)

    def sums_into(self, coarser: AgeBins) -> bool:
        """Whether each of `coarser`'s bins is a union of these bins (its cut points are among ours)."""
        return set(coarser.cut_points) <= set(self.cut_points)

    def coarsening(self, coarser: AgeBins) -> np.ndarray:
        """The 0/1 matrix (self x coarser) that sums probabilities over these bins into `coarser`'s bins."""
        if not self.sums_into(coarser):
            raise ValueError(f"{coarser.name} bins are not unions of {self.name} bins: {coarser.cut_points}")
        return np.eye(len(coarser), dtype=np.float64)[coarser.index(self.cut_points)]


SEED_BINS = AgeBins(
    name="seed",
    labels=("0-2", "3-6", "7-12", "13-17", "18-22", "23-26", "27-33", "34-44", "45-59", "60+"),
    cut_points=(0, 3, 7, 13, 18, 23, 27, 34, 45, 60),
    midpoints=(1.0, 4.5, 9.5, 15.0, 20.0, 24.5, 30.0, 39.0, 52.0, 70.0),
)

ADIENCE_BINS = AgeBins(
    name="adience",
    labels=("0-2", "4-6", "8-12", "15-20", "25-32", "38-43", "48-53", "60+"),
    cut_points=(0, 4, 7, 14, 24, 36, 46, 57),
    midpoints=(1.0, 5.0, 10.0, 17.5, 28.5, 40.5, 50.5, 70.0),
)

# A year of life per bin (the last open-ended): the output of a network that reads out an age in years; the
# paper's bins are sums of these.
YEARS = AgeBins(
    name="years",
    labels=(*(str(year) for year in range(100)), "100+"),
    cut_points=tuple(float(year) for year in range(101)),
    midpoints=(*(year + 0.5 for year in range(100)), 105.0),
)

SCHEMES = {bins.name: bins for bins in (SEED_BINS, ADIENCE_BINS)}
# What a network's output means, known by its width: the paper's ten bins or a year each.
OUTPUTS = {len(bins): bins for bins in (SEED_BINS, YEARS)}


def output_bins(probabilities) -> AgeBins:
    """The bins that a network's output (examples x bins, or one example's) is over."""
    return network_bins(np.shape(probabilities)[-1])


def network_bins(width: int) -> AgeBins:
    """The bins of a network output `width` probabilities wide."""
    if width not in OUTPUTS:
        widths = " or ".join(f"{n} ({bins.name})" for n, bins in OUTPUTS.items())
        raise ValueError(f"an output of {width} probabilities: an age network outputs {widths}")
    return OUTPUTS[width]


def in_bins(probabilities, bins: AgeBins = SEED_BINS) -> np.ndarray:
    """A network's output as probabilities over `bins` (a per-year output summed into them)."""
    source = output_bins(probabilities)
    if source == bins:
        return np.asarray(probabilities)
    return np.asarray(probabilities, dtype=np.float64) @ source.coarsening(bins)


def answered_age(probabilities) -> np.ndarray:
    """The age a network's output answers. Over the paper's bins, the expected age (the paper's readout: their
    midpoints weighted by their probabilities); over years, the median age (`median_age`), the best single answer
    for an absolute error, as the mean is for a squared one."""
    bins = output_bins(probabilities)
    return median_age(probabilities) if bins == YEARS else bins.expected_age(probabilities)


def median_year(probabilities) -> np.ndarray:
    """Of an output over years: the year in which its cumulative probability reaches one half."""
    return _year_of_half(np.cumsum(np.asarray(probabilities, np.float64), axis=-1))


def _year_of_half(cumulative: np.ndarray) -> np.ndarray:
    return np.minimum((cumulative < 0.5).sum(axis=-1), len(YEARS) - 1)


def median_age(probabilities) -> np.ndarray:
    """The median of an output over years, in whole years as labels count age: its median year k, from k - 0.5 to
    k + 0.5 by how far into that year's probability the half falls. Training centres the label of an age of k years
    in the middle of year k, at k + 0.5 (`model.input.soft_labels`); an output that gives that label back answers
    k, and the bin of the answer rounded to a whole year is that of the median year (`predicted_bins`)."""
    probabilities = np.asarray(probabilities, np.float64)
    cumulative = np.cumsum(probabilities, axis=-1)
    year = _year_of_half(cumulative)[..., None]
    mass = np.take_along_axis(probabilities, year, axis=-1)
    below = np.take_along_axis(cumulative, year, axis=-1) - mass
    return (year - 0.5 + (0.5 - below) / np.maximum(mass, np.finfo(np.float64).tiny))[..., 0]


def predicted_bins(probabilities, bins: AgeBins = SEED_BINS) -> np.ndarray:
    """The bin in `bins` that a network's output answers: the most probable of an output over `bins`; otherwise the
    bin of the age it answers (`answered_age`; over years, of its median year), so that the bin and the age agree (a
    model trained on the expected age's error spreads its years wider than a bin, and the most probable sum of them
    was 13 points less often the true bin on the demo)."""
    source = output_bins(probabilities)
    if source == bins:
        return np.asarray(probabilities).argmax(axis=-1)
    return bins.index(median_year(probabilities) if source == YEARS else answered_age(probabilities))


def age_problem(age: float | None) -> str | None:
    """Why an age label cannot be used, or None when it can."""
    if age is None or not np.isfinite(age):
        return MISSING_LABEL
    if not MIN_AGE <= age <= MAX_AGE:
        return LABEL_OUT_OF_RANGE
    return None
