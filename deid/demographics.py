"""Demographics: map raw self-reported answers to SCIN's published release schema.

First version: ages to SCIN bands, timestamps to year, free text dropped.
"""

from __future__ import annotations

from datetime import datetime

AGE_BANDS: tuple[tuple[int, int, str], ...] = (
    (18, 29, "AGE_18_TO_29"),
    (30, 39, "AGE_30_TO_39"),
    (40, 49, "AGE_40_TO_49"),
    (50, 59, "AGE_50_TO_59"),
    (60, 69, "AGE_60_TO_69"),
    (70, 79, "AGE_70_TO_79"),
)
AGE_UNKNOWN = "AGE_UNKNOWN"


def bucket_age(age: int | None) -> str:
    """Map an exact age to SCIN's band; ``AGE_UNKNOWN`` when missing or under 18.

    Examples
    --------
    >>> bucket_age(34), bucket_age(80), bucket_age(None)
    ('AGE_30_TO_39', 'AGE_80_OR_ABOVE', 'AGE_UNKNOWN')
    """
    if age is None or age < 18:
        return AGE_UNKNOWN
    for low, high, band in AGE_BANDS:
        if low <= age <= high:
            return band
    return "AGE_80_OR_ABOVE"


def year_of(timestamp: str) -> str:
    """Reduce an ISO-8601 timestamp to its year; blank when unparseable."""
    try:
        return str(datetime.fromisoformat(timestamp.strip().replace("Z", "+00:00")).year)
    except ValueError:
        return ""
