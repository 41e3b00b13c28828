"""Reading a contributions cases.csv into Case records."""

from __future__ import annotations

from pathlib import Path

import pytest

from deid.cases import read_cases, read_cases_csv
from deid.errors import InvalidCaseRow
from deid.types import ShotType

HEADER = (
    "contribution_id,submitted_at,age,sex,skin_type,race_ethnicity,body_parts,symptoms,textures,"
    "duration,related_category,description,image_1,shot_type_1,image_2,shot_type_2,image_3,shot_type_3\n"
)


def write(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "cases.csv"
    path.write_text(HEADER + "".join(row + "\n" for row in rows), encoding="utf-8")
    return path


def test_reads_multi_selects_and_images(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'c1,2024-05-01T10:00:00Z,34,female,FST2,asian; white,arm;leg,itching,raised,ONE_DAY,RASH,"hi, there",'
        "a.jpg,CLOSE_UP,b.jpg,at_an_angle,,",
        "c2,2024-05-02T10:00:00Z,,,,,,,,,,,c.jpg,,,,,",
    )
    first, second = read_cases_csv(path)
    assert first.contribution_id == "c1" and first.age == 34 and first.sex == "female"
    assert first.race_ethnicity == {"asian", "white"}
    assert first.body_parts == {"arm", "leg"}
    assert first.description == "hi, there"
    assert [image.shot_type for image in first.images] == [ShotType.CLOSE_UP, ShotType.AT_AN_ANGLE]
    assert second.age is None and second.sex is None and second.race_ethnicity == frozenset()
    assert second.images[0].shot_type is None


@pytest.mark.parametrize(
    ("row", "column"),
    [
        pytest.param("c1,2024-05-01,abc,,,,,,,,,,a.jpg,,,,,", "age", id="age-not-a-number"),
        pytest.param("c1,2024-05-01,200,,,,,,,,,,a.jpg,,,,,", "age", id="age-impossible"),
        pytest.param("c1,2024-05-01,30,,,,,,,,,,a.jpg,SELFIE,,,,", "shot_type_1", id="bad-shot-type"),
        pytest.param(",2024-05-01,30,,,,,,,,,,a.jpg,,,,,", "contribution_id", id="no-id"),
        pytest.param("c1,,30,,,,,,,,,,a.jpg,,,,,", "submitted_at", id="no-timestamp"),
    ],
)
def test_bad_rows_name_file_row_and_column(tmp_path: Path, row: str, column: str) -> None:
    path = write(tmp_path, "c0,2024-05-01,30,,,,,,,,,,z.jpg,,,,,", row)
    with pytest.raises(InvalidCaseRow) as caught:
        read_cases_csv(path)
    message = str(caught.value)
    assert str(path) in message and "row 3" in message and column in message


def test_lenient_reader_keeps_good_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "c1,2024-05-01,30,,,,,,,,,,a.jpg,,,,,", "c1,2024-05-01,31,,,,,,,,,,b.jpg,,,,,")
    cases, problems = read_cases(path)
    assert [case.contribution_id for case in cases] == ["c1"]
    assert len(problems) == 1 and "duplicate" in str(problems[0][1])


def test_missing_required_column_names_it(tmp_path: Path) -> None:
    path = tmp_path / "cases.csv"
    path.write_text("contribution_id,age\nc1,30\n", encoding="utf-8")
    with pytest.raises(InvalidCaseRow, match="submitted_at"):
        read_cases_csv(path)
