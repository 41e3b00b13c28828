"""k-anonymity engine: checked against pycanon, an independent implementation."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycanon import anonymity as pycanon

from deid.anonymity import Hierarchy, enforce_k_anonymity
from deid.errors import ConfigError

QIS = ("age", "sex", "tone")
HIERARCHIES = {
    "age": Hierarchy(({"20s": "20-39", "30s": "20-39", "40s": "40-59", "50s": "40-59"}, {"*": "AGE?"})),
    "sex": Hierarchy(({"*": "SEX?"},)),
    "tone": Hierarchy(({"1": "1-2", "2": "1-2", "3": "3-4", "4": "3-4"}, {"*": ""})),
}
AGES = ["20s", "30s", "40s", "50s", "AGE?"]
SEXES = ["F", "M", "X", "SEX?"]
TONES = ["1", "2", "3", "4", ""]


def pycanon_k(rows: list[tuple[str, ...]], columns: tuple[str, ...] = QIS) -> int:
    """k by pycanon; blanks become an explicit UNKNOWN first (pycanon drops NaN rows)."""
    frame = pd.DataFrame(rows, columns=list(columns)).replace("", "UNKNOWN")
    return int(pycanon.k_anonymity(frame, list(columns)))


def skewed_rows(rng: np.random.Generator, count: int) -> list[tuple[str, ...]]:
    """Rows with Zipf-like skew, so there are big cells and a long tail of tiny ones."""

    def pick(values: list[str]) -> list[str]:
        weights = 1.0 / np.arange(1, len(values) + 1) ** rng.uniform(0.5, 2.5)
        return list(rng.choice(values, size=count, p=weights / weights.sum()))

    return list(zip(pick(AGES), pick(SEXES), pick(TONES), strict=True))


def test_docstring_example_generalises_before_suppressing() -> None:
    rows = [("30s", "F", "1")] * 3 + [("40s", "F", "1")] * 2 + [("50s", "F", "1")]
    outcome = enforce_k_anonymity(rows, quasi_identifiers=QIS, hierarchies=HIERARCHIES, k=3)
    assert outcome.published[:3] == [("30s", "F", "1")] * 3
    assert outcome.published[3:] == [("40-59", "F", "1")] * 3
    assert outcome.cells_generalised == {"age": 3, "sex": 0, "tone": 0}
    assert outcome.cells_blanked == {"age": 0, "sex": 0, "tone": 0}
    assert outcome.suppressed == 0
    assert outcome.k_achieved == 3


def test_hierarchy_wildcards() -> None:
    race = Hierarchy(({"*,*": "two_or_more"}, {"*": ""}))
    assert race.generalise("asian,white", 1) == "two_or_more"
    assert race.generalise("asian", 1) == "asian"
    assert race.generalise("asian", 2) == ""
    assert race.unknown == ""
    assert Hierarchy().unknown is None


def test_already_anonymous_rows_are_unchanged_and_lose_nothing() -> None:
    rows = [("20s", "F", "1")] * 5 + [("AGE?", "SEX?", "")] * 5
    outcome = enforce_k_anonymity(rows, quasi_identifiers=QIS, hierarchies=HIERARCHIES, k=5)
    assert outcome.published == rows
    assert outcome.information_loss == 0.0
    assert outcome.discernibility == 50


def test_missing_values_are_a_value_not_dropped() -> None:
    """Two rows with a blank tone form their own class; a NaN-dropping checker would miss them."""
    rows = [("20s", "F", "1")] * 5 + [("20s", "F", "")] * 2
    outcome = enforce_k_anonymity(rows, quasi_identifiers=QIS, hierarchies={}, k=5)
    assert outcome.suppressed == 2
    assert outcome.published[5:] == [None, None]


def test_row_that_cannot_reach_k_is_suppressed() -> None:
    rows = [("20s", "F", "1")] * 5 + [("50s", "M", "4")]
    outcome = enforce_k_anonymity(rows, quasi_identifiers=QIS, hierarchies=HIERARCHIES, k=5)
    assert outcome.suppressed_indices == [5]
    assert outcome.information_loss == pytest.approx(1 / 6)  # one row of six loses every cell


def test_fixed_rows_count_toward_classes_and_are_never_changed() -> None:
    fixed = [("40-59", "F", "1")] * 3
    rows = [("40s", "F", "1"), ("50s", "F", "1")]
    outcome = enforce_k_anonymity(rows, quasi_identifiers=QIS, hierarchies=HIERARCHIES, k=5, fixed_rows=fixed)
    # The two new rows join the earlier release's generalised class instead of being suppressed.
    assert outcome.published == [("40-59", "F", "1")] * 2
    assert outcome.k_achieved == 5
    assert pycanon_k([*fixed, *(row for row in outcome.published if row)]) == 5


def test_fixed_class_below_k_is_reported_not_hidden() -> None:
    fixed = [("20s", "F", "1")] * 5 + [("50s", "M", "4")]
    rows = [("20s", "F", "1")] * 3
    outcome = enforce_k_anonymity(rows, quasi_identifiers=QIS, hierarchies=HIERARCHIES, k=5, fixed_rows=fixed)
    assert outcome.k_achieved == 1
    assert outcome.k_achieved_new_rows == 8
    assert (outcome.earlier_classes_below_k, outcome.earlier_rows_below_k) == (1, 1)


@pytest.mark.parametrize("count", [50, 500, 5000])
@pytest.mark.parametrize("k", [2, 5, 10])
def test_k_matches_pycanon_on_skewed_batches(count: int, k: int) -> None:
    rng = np.random.default_rng(count * 31 + k)
    rows = skewed_rows(rng, count)
    outcome = enforce_k_anonymity(rows, quasi_identifiers=QIS, hierarchies=HIERARCHIES, k=k)
    released = [row for row in outcome.published if row is not None]
    assert len(released) + outcome.suppressed == count
    assert released, "skewed batches of 50+ always keep some rows"
    assert pycanon_k(released) == outcome.k_achieved >= k
    assert 0.0 <= outcome.information_loss <= 1.0
    for name in QIS:
        assert outcome.cells_generalised[name] + outcome.cells_blanked[name] <= count


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(AGES), st.sampled_from(SEXES), st.sampled_from(TONES)), min_size=1, max_size=120
    ),
    fixed=st.lists(st.tuples(st.sampled_from(AGES), st.sampled_from(SEXES), st.sampled_from(TONES)), max_size=30),
    k=st.integers(1, 8),
)
def test_property_every_class_with_new_rows_has_k(
    rows: list[tuple[str, str, str]], fixed: list[tuple[str, str, str]], k: int
) -> None:
    outcome = enforce_k_anonymity(rows, quasi_identifiers=QIS, hierarchies=HIERARCHIES, k=k, fixed_rows=fixed)
    released = [row for row in outcome.published if row is not None]
    classes = Counter([*fixed, *released])
    for row in released:
        assert classes[row] >= k
    if released or fixed:
        assert pycanon_k([*fixed, *released]) == outcome.k_achieved
    # A published value is always the original or one of its generalisations.
    for original, published, levels in zip(rows, outcome.published, outcome.levels, strict=True):
        if published is not None:
            assert levels is not None
            for name, value, new, level in zip(QIS, original, published, levels, strict=True):
                assert HIERARCHIES[name].generalise(value, level) == new


def test_l_diversity_matches_pycanon() -> None:
    rng = np.random.default_rng(7)
    rows = skewed_rows(rng, 2000)
    sensitive = list(rng.choice(["ACNE", "RASH", "MOLE", "NAIL"], size=len(rows), p=[0.7, 0.2, 0.07, 0.03]))
    outcome = enforce_k_anonymity(
        rows, quasi_identifiers=QIS, hierarchies=HIERARCHIES, k=5, new_sensitive=sensitive, l_diversity=2
    )
    kept = [(*row, value) for row, value in zip(outcome.published, sensitive, strict=True) if row is not None]
    frame = pd.DataFrame(kept, columns=[*QIS, "category"]).replace("", "UNKNOWN")
    assert outcome.l_achieved is not None and outcome.l_achieved >= 2
    assert pycanon.l_diversity(frame, list(QIS), ["category"]) == outcome.l_achieved
    assert pycanon.k_anonymity(frame, list(QIS)) == outcome.k_achieved >= 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"k": 0}, "at least 1", id="k-zero"),
        pytest.param({"k": 2, "l_diversity": 2}, "sensitive", id="l-without-sensitive"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        enforce_k_anonymity([("20s", "F", "1")], quasi_identifiers=QIS, hierarchies=HIERARCHIES, **kwargs)


def test_wrong_row_width_raises() -> None:
    with pytest.raises(ConfigError, match="quasi-identifier values"):
        enforce_k_anonymity([("20s", "F")], quasi_identifiers=QIS, hierarchies=HIERARCHIES, k=2)


def test_scales_to_fifty_thousand_rows() -> None:
    """A guard against quadratic regressions; the full benchmark is benchmarks/anonymity.py."""
    rows = skewed_rows(np.random.default_rng(3), 50_000)
    start = time.perf_counter()
    outcome = enforce_k_anonymity(rows, quasi_identifiers=QIS, hierarchies=HIERARCHIES, k=10)
    assert time.perf_counter() - start < 20
    assert outcome.k_achieved >= 10
