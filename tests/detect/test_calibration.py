"""Calibration tables and the evidence that lowers scores: pure functions, no model."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deid.config import DetectorSettings, load_config
from deid.detect.calibration import Calibration, read_calibration
from deid.errors import ConfigError
from deid.evidence import is_implausible_for, lower_odds, weigh_by_body_parts
from deid.types import Box, Region, RegionKind

TABLE = Calibration(((0.2, 0.05), (0.5, 0.2), (0.6, 0.55), (1.0, 1.0)))


@given(st.floats(0, 1), st.floats(0, 1))
def test_a_stronger_detection_is_never_less_likely(first: float, second: float) -> None:
    low, high = sorted((first, second))
    assert 0.0 <= TABLE(low) <= TABLE(high) <= 1.0


def test_tables_hold_flat_beyond_their_ends() -> None:
    assert TABLE(0.0) == 0.05 and TABLE(1.0) == 1.0


@pytest.mark.parametrize(
    "points",
    [
        pytest.param([[0.5, 0.5]], id="one-point"),
        pytest.param([[0.5, 0.5], [0.4, 0.6]], id="raw-not-increasing"),
        pytest.param([[0.2, 0.6], [0.8, 0.4]], id="probability-decreasing"),
        pytest.param([[0.2, 0.6], [0.8, 1.4]], id="probability-above-one"),
    ],
)
def test_bad_tables_are_refused_at_load(points: list[list[float]]) -> None:
    with pytest.raises(ConfigError):
        DetectorSettings(calibration={"standalone": tuple(tuple(p) for p in points)})  # type: ignore[arg-type]


def test_unknown_table_names_are_refused() -> None:
    settings = DetectorSettings(calibration={"typo": ((0.0, 0.0), (1.0, 1.0))})
    with pytest.raises(ConfigError, match="typo"):
        read_calibration(settings, {"standalone": ((0.0, 0.0), (1.0, 1.0))}, "body.nudenet")


@given(st.floats(0, 0.999), st.floats(0.01, 1))
def test_evidence_only_lowers_and_never_touches_a_confident_region(score: float, ratio: float) -> None:
    lowered = lower_odds(score, ratio, keep_above=0.6)
    assert lowered <= score + 1e-12
    if score >= 0.6:
        assert lowered == score


def _sensitive(score: float) -> Region:
    return Region(RegionKind.SENSITIVE_BODY, Box(0, 0, 50, 50), score, "body.nudenet@test", "NudeNet")


def test_a_sensitive_box_on_a_foot_case_is_implausible_but_a_face_counts_whatever_the_case() -> None:
    evidence = load_config().policy.evidence
    assert is_implausible_for(RegionKind.SENSITIVE_BODY, ["foot"], evidence)
    assert is_implausible_for(RegionKind.SENSITIVE_BODY, ["Toenails", "heel"], evidence)
    assert not is_implausible_for(RegionKind.SENSITIVE_BODY, ["foot", "groin"], evidence)
    assert not is_implausible_for(RegionKind.SENSITIVE_BODY, [], evidence)
    assert not is_implausible_for(RegionKind.FACE, ["arm"], evidence)
    weighed = weigh_by_body_parts([_sensitive(0.45), _sensitive(0.9)], ["foot"], evidence)
    assert weighed[0].score < 0.25 and "lowered" in weighed[0].note
    assert weighed[1].score == 0.9
