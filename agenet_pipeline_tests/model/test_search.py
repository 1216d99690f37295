import pytest
from hypothesis import given
from hypothesis import strategies as st

from agenet_pipeline.model.search import grid, random_trials, trials

SPACE = {"learning_rate": [3e-4, 1e-3], "filters": [(8, 16), (16, 32, 64)], "kernel_size": [3, 5]}


def test_grid_is_every_combination():
    points = grid(SPACE)
    assert len(points) == 8 and len({str(p) for p in points}) == 8
    assert {"learning_rate": 3e-4, "filters": (8, 16), "kernel_size": 3} in points


def test_random_search_is_seeded_and_distinct():
    assert random_trials(SPACE, 5, seed=1) == random_trials(SPACE, 5, seed=1)
    assert random_trials(SPACE, 5, seed=1) != random_trials(SPACE, 5, seed=2)
    assert len({str(p) for p in random_trials(SPACE, 5, seed=1)}) == 5
    assert len(random_trials(SPACE, 50)) == 8


def test_bad_space_or_method_is_refused():
    with pytest.raises(ValueError, match="no values for kernel_size"):
        trials({**SPACE, "kernel_size": []}, "grid", 4)
    with pytest.raises(ValueError, match="'grid' or 'random'"):
        trials(SPACE, "bayes", 4)


@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c"]), st.lists(st.integers(), min_size=1, max_size=3, unique=True), min_size=1
    )
)
def test_grid_size_is_the_product_of_the_value_counts(space):
    expected = 1
    for values in space.values():
        expected *= len(values)
    assert len(grid(space)) == expected
