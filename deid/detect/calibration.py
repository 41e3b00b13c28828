"""Calibration: a detector's raw evidence turned into the probability that a region identifies someone.

A region's :attr:`~deid.types.Region.score` is read by the policy as a
probability (``[policy.rules.<kind>]`` thresholds are probabilities), so a
detector's own number (a heatmap peak, a class confidence, a recognition
confidence) goes through a table measured on labelled photos first. A table
is a list of ``[raw, probability]`` points, linearly interpolated and held
flat beyond its ends; it is monotone, so a stronger detection is never less
likely. Tables live in ``deid/data/default.toml`` under
``[detection.detectors."<name>".calibration]`` with their provenance in the
comments (tune half of ``../shared/devdata``, :func:`deid.evaluate.devdata_split`);
``benchmarks/review_load.py`` prints the figures they lead to on both halves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from deid.config import DetectorSettings
from deid.errors import ConfigError

CalibrationPoints = Sequence[tuple[float, float]]


@dataclass(frozen=True, slots=True)
class Calibration:
    """A monotone piecewise-linear map from raw evidence to probability.

    Examples
    --------
    >>> table = Calibration(((0.5, 0.1), (0.9, 0.7)))
    >>> round(table(0.7), 2), table(0.2), table(1.0)
    (0.4, 0.1, 0.7)
    """

    points: tuple[tuple[float, float], ...]

    def __call__(self, raw: float) -> float:
        """The probability for ``raw``."""
        raws = [point[0] for point in self.points]
        probabilities = [point[1] for point in self.points]
        return float(np.interp(raw, raws, probabilities))


def read_calibration(
    settings: DetectorSettings, defaults: Mapping[str, CalibrationPoints], name: str
) -> dict[str, Calibration]:
    """A detector's calibration tables: its defaults, each replaced whole by a configured table.

    Raises
    ------
    ConfigError
        If a configured table name is not one the detector uses.
    """
    unknown = sorted(set(settings.calibration) - set(defaults))
    if unknown:
        raise ConfigError(
            f"unknown calibration table {unknown[0]!r} for detector {name}",
            hint=f"valid tables: {', '.join(sorted(defaults)) or 'none'}",
        )
    tables = {key: tuple((float(raw), float(p)) for raw, p in points) for key, points in defaults.items()}
    tables.update({key: tuple(points) for key, points in settings.calibration.items()})
    return {key: Calibration(points) for key, points in tables.items()}


__all__ = ["Calibration", "CalibrationPoints", "read_calibration"]
