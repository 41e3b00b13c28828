"""Small input folders cut from ``sample_data/``: some of its contributions, their rows and their images."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Collection
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def sample_rows(contribution_ids: Collection[str]) -> list[dict[str, str]]:
    """The sample ``cases.csv`` rows of these contributions, in file order."""
    with (SAMPLE / "cases.csv").open(newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if row["contribution_id"] in contribution_ids]


def sample_subset(folder: Path, contribution_ids: Collection[str]) -> Path:
    """Write ``folder/cases.csv`` and ``folder/images/`` holding only these sample contributions; return ``folder``."""
    rows = sample_rows(contribution_ids)
    (folder / "images").mkdir(parents=True)
    with (folder / "cases.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for row in rows:
        for key in ("image_1", "image_2", "image_3"):
            if row[key]:
                shutil.copy(SAMPLE / "images" / row[key], folder / "images" / row[key])
    return folder
