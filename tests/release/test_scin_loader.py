"""A release loads the way SCIN's demo notebook loads SCIN (our own code, written after reading it).

The notebook reads both CSVs with ``case_id`` as a string, merges them on
``case_id``, opens each ``image_N_path`` relative to the bucket root and
counts the demographic columns; here the release folder is the bucket.
"""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
from PIL import Image

from tests.release.conftest import Published


def load_release(root: object) -> pd.DataFrame:
    cases = pd.read_csv(f"{root}/dataset/scin_cases.csv", dtype={"case_id": str})
    cases["case_id"] = cases["case_id"].astype(str)
    labels = pd.read_csv(f"{root}/dataset/scin_labels.csv", dtype={"case_id": str})
    labels["case_id"] = labels["case_id"].astype(str)
    return pd.merge(cases, labels, on="case_id")


def test_release_loads_like_scin(published: Published) -> None:
    root = published.out
    frame = load_release(root)
    schema = json.loads((root / "schema.json").read_text("utf-8"))
    cases_columns = [c["name"] for c in schema["cases_columns"]]
    assert (
        list(pd.read_csv(root / "dataset" / "scin_cases.csv", nrows=0).columns)[: len(cases_columns)] == cases_columns
    )
    assert len(frame) == len(pd.read_csv(root / "dataset" / "scin_cases.csv")) > 0
    assert frame["case_id"].map(lambda v: -(2**63) <= int(v) < 2**63).all()
    opened = 0
    for column in ("image_1_path", "image_2_path", "image_3_path"):
        for path in frame[column].dropna():
            with Image.open(root / path) as image:
                image.load()
                assert image.format == "PNG" and image.width > 0
            opened += 1
    assert opened == len(list((root / "dataset" / "images").iterdir()))
    vocab = {c["name"]: set(c.get("values", [])) for c in schema["cases_columns"]}
    for column in ("age_group", "sex_at_birth", "fitzpatrick_skin_type", "condition_duration", "related_category"):
        counted = Counter(frame[column].dropna())
        assert set(counted) <= vocab[column], (
            f"{column} has values outside SCIN's vocabulary: {set(counted) - vocab[column]}"
        )
    assert set(frame["release"]) == {"1.0.0"}
    race = [c for c in frame.columns if c.startswith("race_ethnicity_")]
    assert set(frame[race].stack().dropna()) <= {"YES"}
    assert "NONE_SELECTED" not in set(frame["fitzpatrick_skin_type"].dropna())
