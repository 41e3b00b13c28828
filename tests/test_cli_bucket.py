"""``deid bucket``: a contributions CSV to a k-anonymous SCIN-schema release table."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pandas as pd
import pytest
from pycanon import anonymity as pycanon

from deid.cli import EXIT_ERROR, EXIT_FAILURES, EXIT_OK, main
from deid.demographics import RACE_SUFFIXES, RELEASE_COLUMNS

HEADER = [
    "contribution_id", "submitted_at", "age", "sex", "skin_type", "race_ethnicity", "body_parts", "symptoms",
    "textures", "duration", "related_category", "description", "image_1", "shot_type_1", "image_2", "shot_type_2",
    "image_3", "shot_type_3",
]  # fmt: skip


def write_contributions(path: Path, count: int, *, seed: int = 0, minors: int = 0) -> Path:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for index in range(count):
            age = rng.choice(["", *map(str, range(18, 90))]) if index >= minors else "15"
            writer.writerow(
                [
                    f"c{index}", f"2024-0{rng.randint(1, 9)}-01T10:00:00Z", age,
                    rng.choice(["female", "female", "male", "other", ""]),
                    rng.choice(["FST1", "2", "3", "4", "5", "6", ""]),
                    rng.choice(["white", "asian", "black;white", "hispanic", ""]),
                    "arm", "itching", "raised", "ONE_DAY", "RASH", "=call me", f"orig_{index}.jpg", "CLOSE_UP",
                    "", "", "", "",
                ]
            )  # fmt: skip
    return path


def release_k(path: Path, k_columns: list[str]) -> int:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["race"] = frame.apply(
        lambda row: (
            "+".join(s for s in RACE_SUFFIXES if row[f"race_ethnicity_{s}"] == "YES")
            + ("+two" if row["race_ethnicity_two_or_more_after_mitigation"] == "YES" else "")
        ),
        axis=1,
    )
    frame = frame.replace("", "UNKNOWN")
    return int(pycanon.k_anonymity(frame, k_columns))


def test_bucket_writes_a_k_anonymous_release_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_contributions(tmp_path / "cases.csv", 400, minors=3)
    out, mapping = tmp_path / "release.csv", tmp_path / "private_map.csv"
    status = main(["bucket", str(source), "--out", str(out), "--k", "5", "--json", "--mapping", str(mapping)])
    report = json.loads(capsys.readouterr().out)
    assert status == EXIT_FAILURES  # the three minors are held
    assert report["k_target"] == 5 and report["cases_held"] == 3
    assert set(report["held"]) == {"c0", "c1", "c2"}
    header = out.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert tuple(header) == RELEASE_COLUMNS
    qis = ["year", "age_group", "sex_at_birth", "fitzpatrick_skin_type", "race"]
    assert release_k(out, qis) == report["k_achieved"] >= 5
    text = out.read_text(encoding="utf-8")
    assert "orig_" not in text and "call me" not in text  # original names and free text stay out
    assert "orig_10.jpg" in mapping.read_text(encoding="utf-8")


def test_bucket_counts_earlier_release(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = tmp_path / "r1.csv"
    assert main(["bucket", str(write_contributions(tmp_path / "a.csv", 200, seed=1)), "--out", str(first)]) == EXIT_OK
    capsys.readouterr()
    second = tmp_path / "r2.csv"
    source = write_contributions(tmp_path / "b.csv", 80, seed=2)
    status = main(
        ["bucket", str(source), "--out", str(second), "--earlier", str(first), "--release", "1.1.0", "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert status == EXIT_OK
    assert report["rows_earlier"] == count_rows(first)
    with second.open(encoding="utf-8", newline="") as handle:
        releases = {row["release"] for row in csv.DictReader(handle)}
    assert releases == {"1.0.0", "1.1.0"}


def count_rows(release: Path) -> int:
    with release.open(encoding="utf-8", newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def test_bucket_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_contributions(tmp_path / "cases.csv", 60, minors=1)
    status = main(["bucket", str(source), "--out", str(tmp_path / "out.csv"), "--k", "3"])
    text = capsys.readouterr().out
    assert status == EXIT_FAILURES
    assert "k=" in text and "held c0: under_min_age" in text


@pytest.mark.parametrize(
    "extra",
    [pytest.param(["--k", "0"], id="k-zero"), pytest.param(["--config", "missing.toml"], id="missing-config")],
)
def test_bucket_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]) -> None:
    source = write_contributions(tmp_path / "cases.csv", 10)
    status = main(["bucket", str(source), "--out", str(tmp_path / "o.csv"), *extra])
    assert status == EXIT_ERROR
    assert json.loads(capsys.readouterr().err)["error"] == "config_error"


def test_bucket_unreadable_cases_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["bucket", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o.csv")])
    assert status == EXIT_ERROR
    assert json.loads(capsys.readouterr().err)["error"] == "invalid_case_row"
