"""Train / validation / test splits: sizes for small files, determinism, separate validation."""

from __future__ import annotations

import pytest

from engine.datasets.splits import split


def sizes(parts: dict[str, list[int]]) -> tuple[int, int, int]:
    return len(parts["train"]), len(parts["validation"]), len(parts["test"])


@pytest.mark.parametrize("n, expected", [
    (10, (8, 1, 1)), (19, (17, 1, 1)), (20, (16, 2, 2)), (40, (32, 4, 4)),
    (46, (36, 5, 5)), (1000, (800, 100, 100)), (5000, (4600, 200, 200)), (2, (2, 0, 0)),
    (0, (0, 0, 0)),
])
def test_sizes_make_sense_for_small_and_large_files(n: int, expected: tuple) -> None:
    assert sizes(split(n)) == expected


@pytest.mark.parametrize("n", [0, 1, 10, 23, 57, 400])
def test_every_index_is_in_exactly_one_split(n: int) -> None:
    parts = split(n, seed=3)
    everything = parts["train"] + parts["validation"] + parts["test"]
    assert sorted(everything) == list(range(n))


def test_same_seed_same_split_other_seed_other_split() -> None:
    assert split(100, seed=7) == split(100, seed=7)
    assert split(100, seed=7)["test"] != split(100, seed=8)["test"]


def test_the_held_out_examples_are_not_just_the_first_rows() -> None:
    assert split(100)["test"] != list(range(10))


def test_a_separate_validation_file_means_no_validation_carved_from_this_one() -> None:
    parts = split(20, seed=1, validation=5)
    assert sizes(parts) == (18, 0, 2)
    assert parts["test"] == split(20, seed=1)["test"]  # the test set does not move
