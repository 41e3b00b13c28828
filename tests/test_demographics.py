"""Demographics: SCIN mapping, small-cell mitigation, free text, and k checked with pycanon."""

from __future__ import annotations

import csv
import dataclasses
import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pycanon import anonymity as pycanon

from deid.config import Config, DemographicsSettings, load_config
from deid.demographics import (
    RACE_SUFFIXES,
    SCIN_COLUMNS,
    ReleaseTable,
    build_release_table,
    map_race,
    map_sex,
    map_skin_type,
    read_release_csv,
    write_release_csv,
)
from deid.errors import ConfigError
from deid.ids import new_case_id
from deid.types import Case

QI_COLUMNS = ["year", "age_group", "sex_at_birth", "fitzpatrick_skin_type", "race"]
RACE_CHOICES: list[tuple[tuple[str, ...], float]] = [
    (("white",), 40),
    (("asian",), 15),
    (("black",), 12),
    (("hispanic",), 10),
    ((), 10),
    (("white", "asian"), 3),
    (("black", "white"), 2),
    (("hispanic", "white"), 2),
    (("native hawaiian",), 1),
    (("mena", "black", "asian"), 0.5),
    (("prefer not to say",), 2),
    (("american indian", "white"), 0.5),
]


def make_cases(count: int, seed: int, *, skew: float = 1.0, year_start: int = 2023) -> list[Case]:
    """Self-reported answers with skewed distributions (and some missing ones)."""
    rng = random.Random(seed)
    ages = [None, *range(14, 96)]
    age_weights = [6.0, *(1.0 / (1 + abs(age - 30) / 10) ** skew for age in range(14, 96))]
    sexes = ["female", "male", "other", "prefer not to say", None, "F"]
    sex_weights = [50, 35, 1, 2, 8, 4]
    skins = ["FST1", "2", "III", "type 4", "tans very easily", "never burns", "none of the above", None]
    skin_weights = [8, 20, 25, 15, 6, 3 / skew, 8, 15]
    races, race_weights = zip(*RACE_CHOICES, strict=True)
    cases = []
    for index in range(count):
        year = rng.choices([year_start, year_start + 1], [3, 1])[0]
        cases.append(
            Case(
                contribution_id=f"c{index:06d}",
                submitted_at=f"{year}-0{rng.randint(1, 9)}-11T10:00:00Z",
                age=rng.choices(ages, age_weights)[0],
                sex=rng.choices(sexes, sex_weights)[0],
                skin_type=rng.choices(skins, skin_weights)[0],
                race_ethnicity=frozenset(rng.choices(races, [w**skew for w in race_weights])[0]),
                body_parts=frozenset(rng.sample(["arm", "leg", "face", "back", "palm"], rng.randint(0, 2))),
                symptoms=frozenset(rng.sample(["itching", "pain", "fever"], rng.randint(0, 2))),
                textures=frozenset(rng.sample(["raised", "flat"], rng.randint(0, 1))),
                duration=rng.choice(["ONE_DAY", "ONE_TO_FOUR_WEEKS", None]),
                related_category=rng.choice(["RASH", "ACNE", "GROWTH_OR_MOLE", "NAIL_PROBLEM", None]),
                description="Saw Dr Smith on 3 May 2024, email me at a@b.org",
            )
        )
    return cases


def build(
    cases: Sequence[Case],
    demographics: DemographicsSettings,
    *,
    release: str = "1.0.0",
    earlier: Sequence[Mapping[str, str]] = (),
    ids: Mapping[str, int] | None = None,
) -> ReleaseTable:
    case_ids = dict(ids) if ids is not None else {case.contribution_id: new_case_id() for case in cases}
    paths = {case.contribution_id: [(f"images/{case.contribution_id}.png", "CLOSE_UP")] for case in cases}
    return build_release_table(
        cases, demographics, case_ids=case_ids, image_paths=paths, release=release, earlier_rows=earlier
    )


def independent_frame(rows: Sequence[Mapping[str, str]]) -> pd.DataFrame:
    """The release rows as pycanon sees them: race set from the booleans, blanks as UNKNOWN."""
    records = []
    for row in rows:
        race = "+".join(
            suffix
            for suffix in (*RACE_SUFFIXES, "two_or_more_after_mitigation")
            if row[f"race_ethnicity_{suffix}"] == "YES"
        )
        # A value generalised outside SCIN's vocabulary is published in "<column>_generalised"
        # beside a blank SCIN column: both cells together are what a reader sees.
        published = {name: row[name] + "|" + row.get(f"{name}_generalised", "") for name in QI_COLUMNS[:-1]}
        records.append({**row, **published, "race": race})
    return pd.DataFrame(records).replace("", "UNKNOWN")


def pycanon_k(rows: Sequence[Mapping[str, str]]) -> int:
    return int(pycanon.k_anonymity(independent_frame(rows)[QI_COLUMNS], QI_COLUMNS))


def with_settings(config: Config, **changes: object) -> DemographicsSettings:
    return dataclasses.replace(config.demographics, **changes)  # type: ignore[arg-type]


# --- k-anonymity against pycanon -------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "k"),
    [
        pytest.param(50, 2, id="50-k2"),
        pytest.param(50, 5, id="50-k5"),
        pytest.param(300, 5, id="300-k5"),
        pytest.param(1000, 5, id="1000-k5"),
        pytest.param(1000, 10, id="1000-k10"),
        pytest.param(5000, 5, id="5000-k5"),
        pytest.param(5000, 20, id="5000-k20"),
    ],
)
def test_reported_k_matches_pycanon(config: Config, count: int, k: int) -> None:
    table = build(make_cases(count, seed=count + k), with_settings(config, k=k))
    report = table.report
    assert table.rows, "a skewed batch of 50+ always keeps some rows"
    assert report.k_achieved == pycanon_k(table.rows) >= k
    assert report.rows_released + report.cases_suppressed + report.cases_held == count
    assert report.held_reasons.get("under_min_age", 0) == len(table.held)
    assert 0.0 <= report.information_loss <= 1.0
    json.dumps(report.to_json())  # serialisable as it is


@settings(max_examples=12, deadline=None)
# Found by Hypothesis: nine rows whose skin type was generalised to FST3_OR_4 (published in
# fitzpatrick_skin_type_generalised) are a class of their own, which this oracle once missed.
@example(count=50, seed=1, skew=0.5, k=8)
@given(
    count=st.integers(50, 600),
    seed=st.integers(0, 10_000),
    skew=st.floats(0.5, 3.0),
    k=st.integers(2, 12),
)
def test_property_k_matches_pycanon(config: Config, count: int, seed: int, skew: float, k: int) -> None:
    table = build(make_cases(count, seed, skew=skew), with_settings(config, k=k))
    if table.rows:
        assert table.report.k_achieved == pycanon_k(table.rows) >= k
    else:
        assert table.report.k_achieved == 0


def test_earlier_releases_count_and_stay_unchanged(config: Config) -> None:
    demographics = with_settings(config, k=5)
    first = build(make_cases(400, seed=1), demographics, release="1.0.0")
    earlier = [dict(row) for row in first.rows]
    second_cases = [
        dataclasses.replace(case, contribution_id=f"n{case.contribution_id}") for case in make_cases(150, 2)
    ]
    second = build(second_cases, demographics, release="1.1.0", earlier=earlier)
    assert second.earlier_rows == earlier  # public rows are never rewritten
    assert {row["release"] for row in second.rows} == {"1.1.0"}
    assert second.report.rows_earlier == len(earlier)
    assert second.report.k_achieved == pycanon_k([*earlier, *second.rows]) >= 5


def test_case_ids_come_from_the_ledger_mapping(config: Config) -> None:
    cases = make_cases(60, seed=3)
    ids = {case.contribution_id: 1000 + index for index, case in enumerate(cases)}
    table = build(cases, with_settings(config, k=2), ids=ids)
    released = {int(row["case_id"]) for row in table.rows}
    assert released <= set(ids.values())


def test_new_case_id_is_random_signed_64_bit() -> None:
    ids = {new_case_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(-(2**63) <= value < 2**63 and value != 0 for value in ids)
    assert any(value < 0 for value in ids) and any(value > 0 for value in ids)


# --- SCIN schema and mapping -----------------------------------------------------------------


def test_columns_follow_scin_order(config: Config) -> None:
    table = build(make_cases(20, seed=4), with_settings(config, k=1))
    # SCIN's columns first, in SCIN's order, then deid's declared generalised columns (issue 16).
    assert table.columns == (*SCIN_COLUMNS, "age_group_generalised", "fitzpatrick_skin_type_generalised")
    assert SCIN_COLUMNS[:7] == (
        "case_id",
        "source",
        "release",
        "year",
        "age_group",
        "sex_at_birth",
        "fitzpatrick_skin_type",
    )
    assert SCIN_COLUMNS[-8:] == (
        "image_1_path",
        "image_2_path",
        "image_3_path",
        "image_1_shot_type",
        "image_2_shot_type",
        "image_3_shot_type",
        "combined_race",
        "race_ethnicity_two_or_more_after_mitigation",
    )
    assert all(list(row) == list(table.columns) for row in table.rows)
    assert "description" not in SCIN_COLUMNS


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("FST1", "FST1"),
        ("fst 6", "FST6"),
        ("3", "FST3"),
        ("IV", "FST4"),
        ("Type II", "FST2"),
        ("Fitzpatrick skin type V", "FST5"),
        ("NEVER_TANS", "FST1"),
        ("TANS_MINIMALLY", "FST2"),
        ("TANS_UNIFORMLY", "FST3"),
        ("ALWAYS_TANS_WELL", "FST4"),
        ("TANS_EASILY", "FST5"),
        ("ALWAYS_TANS", "FST6"),
        ("burns easily, never tans", "FST1"),
        ("Always burns", "FST1"),
        ("usually burns, tans minimally", "FST2"),
        ("sometimes burns and tans uniformly", "FST3"),
        ("rarely burns, tans well", "FST4"),
        ("very rarely burns, tans very easily", "FST5"),
        ("never burns, deeply pigmented", "FST6"),
        ("NONE_OF_THE_ABOVE", "NONE_IDENTIFIED"),
        ("not sure", "NONE_IDENTIFIED"),
        (None, ""),
        ("", ""),
        ("7", None),
        ("purple", None),
    ],
)
def test_skin_type_vocabulary(raw: str | None, expected: str | None) -> None:
    assert map_skin_type(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("female", "FEMALE"),
        ("F", "FEMALE"),
        ("Male", "MALE"),
        ("other", "OTHER"),
        ("intersex", "OTHER"),
        ("prefer_not_to_say", "PREFER_NOT_TO_SAY"),
        ("OTHER_OR_UNSPECIFIED", "OTHER_OR_UNSPECIFIED"),
        (None, "OTHER_OR_UNSPECIFIED"),
        ("walrus", None),
    ],
)
def test_sex_vocabulary(raw: str | None, expected: str | None) -> None:
    assert map_sex(raw) == expected


def test_race_aliases_map_to_columns() -> None:
    found, unknown = map_race({"Black", "Latina", "Caucasian", "MENA", "Pacific Islander", "Native American", "x"})
    assert found == {
        "black_or_african_american",
        "hispanic_latino_or_spanish_origin",
        "white",
        "middle_eastern_or_north_african",
        "native_hawaiian_or_pacific_islander",
        "american_indian_or_alaska_native",
    }
    assert unknown == 1


def test_one_case_maps_to_scin_values(config: Config) -> None:
    case = Case(
        "c1",
        "2024-06-01T12:00:00+02:00",
        age=67,
        sex="female",
        skin_type="6",
        race_ethnicity=frozenset({"asian"}),
        body_parts=frozenset({"face", "body_parts_leg", "elbow", "spleen"}),
        symptoms=frozenset({"itchy", "condition_symptoms_bleeding", "fever", "no_relevant_symptoms"}),
        textures=frozenset({"raised", "FLUID_FILLED"}),
        duration="ONE_TO_THREE_MONTHS",
        related_category="growth",
        description="secret",
    )
    table = build_release_table(
        [case],
        with_settings(config, k=1, min_sex_cell=1),
        case_ids={"c1": -42},
        image_paths={"c1": [("images/a.png", "CLOSE_UP"), ("images/b.png", "AT_DISTANCE")]},
        release="2.0.0",
    )
    (row,) = table.rows
    yes = {column for column, value in row.items() if value == "YES"}
    assert yes == {
        "race_ethnicity_asian",
        "body_parts_head_or_neck",
        "body_parts_leg",
        "body_parts_arm",
        "body_parts_other",  # "spleen" is not in the vocabulary
        "condition_symptoms_itching",
        "condition_symptoms_bleeding",
        "other_symptoms_fever",
        "other_symptoms_no_relevant_symptoms",
        "textures_raised_or_bumpy",
        "textures_fluid_filled",
    }
    assert (row["case_id"], row["source"], row["release"], row["year"]) == ("-42", "deid", "2.0.0", "2024")
    assert (row["age_group"], row["sex_at_birth"], row["fitzpatrick_skin_type"]) == ("AGE_60_TO_69", "FEMALE", "FST6")
    assert (row["related_category"], row["condition_duration"]) == ("GROWTH_OR_MOLE", "ONE_TO_THREE_MONTHS")
    assert (row["image_1_path"], row["image_2_shot_type"], row["image_3_path"]) == ("images/a.png", "AT_DISTANCE", "")
    assert row["combined_race"] == "asian"
    assert "secret" not in row.values()
    assert table.report.unrecognised_answers == {"body_parts": 1}


# --- SCIN small-cell rules on hand-made cases ------------------------------------------------


def hand_made(answers: Sequence[tuple[str | None, frozenset[str]]]) -> list[Case]:
    return [
        Case(f"h{index}", "2024-01-01T00:00:00Z", age=40, sex=sex, skin_type="3", race_ethnicity=races)
        for index, (sex, races) in enumerate(answers)
    ]


def test_rare_sex_answers_merge_into_other_or_unspecified(config: Config) -> None:
    white = frozenset({"white"})
    cases = hand_made(
        [("female", white)] * 6
        + [("male", white)] * 6
        + [("other", white)] * 2
        + [("prefer not to say", white), (None, white)]
    )
    table = build(cases, with_settings(config, k=1, min_sex_cell=5))
    assert Counter(row["sex_at_birth"] for row in table.rows) == {"FEMALE": 6, "MALE": 6, "OTHER_OR_UNSPECIFIED": 4}
    assert table.report.sex_merged == {"OTHER": 2, "PREFER_NOT_TO_SAY": 1}


def test_rare_male_merges_but_earlier_rows_count(config: Config) -> None:
    white = frozenset({"white"})
    cases = hand_made([("female", white)] * 6 + [("male", white)] * 3)
    alone = build(cases, with_settings(config, k=1, min_sex_cell=5))
    assert Counter(row["sex_at_birth"] for row in alone.rows) == {"FEMALE": 6, "OTHER_OR_UNSPECIFIED": 3}
    assert alone.report.sex_merged == {"MALE": 3}
    earlier = [dict.fromkeys(SCIN_COLUMNS, "") | {"case_id": str(i), "sex_at_birth": "MALE"} for i in range(2)]
    counted = build(cases, with_settings(config, k=1, min_sex_cell=5), earlier=earlier)
    assert Counter(row["sex_at_birth"] for row in counted.rows) == {"FEMALE": 6, "MALE": 3}


def test_rare_race_combinations_become_two_or_more(config: Config) -> None:
    answers = (
        [("female", frozenset({"asian", "white"}))] * 6
        + [("female", frozenset({"black", "white"}))] * 2
        + [("female", frozenset({"native hawaiian"}))]
        + [("female", frozenset())] * 3
    )
    table = build(hand_made(answers), with_settings(config, k=1, min_race_cell=5))
    combined = Counter(row["combined_race"] for row in table.rows)
    assert combined == {
        "asian,white": 6,
        "two_or_more_after_mitigation": 2,
        "native_hawaiian_or_pacific_islander": 1,
        "": 3,
    }
    mitigated = [row for row in table.rows if row["combined_race"] == "two_or_more_after_mitigation"]
    for row in mitigated:  # the original selections are not published beside the merged flag
        assert [s for s in RACE_SUFFIXES if row[f"race_ethnicity_{s}"]] == []
        assert row["race_ethnicity_two_or_more_after_mitigation"] == "YES"
    assert (table.report.race_combinations_merged, table.report.race_rows_merged) == (1, 2)
    missing = [row for row in table.rows if row["combined_race"] == ""]
    assert all(not row[f"race_ethnicity_{s}"] for row in missing for s in RACE_SUFFIXES)


def test_multi_select_race_counts_as_one_value(config: Config) -> None:
    """Five {asian, white} rows form one class of five, even though five rows are also 'white'."""
    answers = [("female", frozenset({"asian", "white"}))] * 5 + [("female", frozenset({"white"}))] * 5
    table = build(hand_made(answers), with_settings(config, k=5))
    assert table.report.cases_suppressed == 0
    assert table.report.cells_generalised["race_ethnicity"] == table.report.cells_blanked["race_ethnicity"] == 0
    assert pycanon_k(table.rows) == 5


# --- holds --------------------------------------------------------------------------------------


def test_holds_name_their_reason(config: Config) -> None:
    base = make_cases(12, seed=9)
    cases = [
        dataclasses.replace(base[0], age=17),
        dataclasses.replace(base[1], age=None),
        dataclasses.replace(base[2], submitted_at="yesterday"),
        base[3],
        base[4],
        base[4],
        *base[5:],
    ]
    ids = {case.contribution_id: index + 1 for index, case in enumerate(base)}
    del ids[base[3].contribution_id]
    ids[base[5].contribution_id] = 777
    earlier = [dict.fromkeys(SCIN_COLUMNS, "") | {"case_id": "777"}]
    paths = {case.contribution_id: [(f"images/{case.contribution_id}.png", "CLOSE_UP")] for case in base}
    paths[base[6].contribution_id] = []
    paths[base[7].contribution_id] = [("images/x.png", "SIDEWAYS")]
    table = build_release_table(
        cases, with_settings(config, k=1), case_ids=ids, image_paths=paths, release="1", earlier_rows=earlier
    )
    reasons = {key: value.split(":")[0] for key, value in table.held.items()}
    assert reasons == {
        base[0].contribution_id: "under_min_age",
        base[2].contribution_id: "invalid_submitted_at",
        base[3].contribution_id: "no_case_id",
        base[4].contribution_id: "duplicate_contribution",
        base[5].contribution_id: "case_id_conflict",
        base[6].contribution_id: "no_released_images",
        base[7].contribution_id: "invalid_shot_type",
    }
    missing_age = next(row for row in table.rows if row["case_id"] == str(ids[base[1].contribution_id]))
    assert missing_age["age_group"] == "AGE_UNKNOWN"


def test_min_age_is_configurable(config: Config) -> None:
    cases = [dataclasses.replace(case, age=20) for case in make_cases(5, seed=2)]
    table = build(cases, with_settings(config, k=1, min_age=21))
    assert len(table.held) == 5


# --- free text ------------------------------------------------------------------------------------


def test_free_text_dropped_by_default(config: Config) -> None:
    table = build(make_cases(30, seed=5), with_settings(config, k=1))
    assert "description" not in table.columns
    assert table.report.free_text_kept is False
    assert not any("Smith" in value for row in table.rows for value in row.values())


def test_free_text_kept_is_scrubbed_and_counted(config: Config, tmp_path: Path) -> None:
    names_file = tmp_path / "names.txt"
    names_file.write_text("# surnames\nSmith\n", encoding="utf-8")
    demographics = with_settings(config, k=1, keep_free_text=True, names=("Dr Who",), names_file=str(names_file))
    table = build(make_cases(10, seed=6), demographics)
    assert table.columns[-1] == "description"
    released = len(table.rows)
    assert all(row["description"] == "Saw Dr [NAME] on [DATE], email me at [EMAIL]" for row in table.rows)
    assert table.report.free_text_removed == {"name": released, "date": released, "email": released}


def test_unreadable_names_file_is_a_config_error(config: Config, tmp_path: Path) -> None:
    demographics = with_settings(config, keep_free_text=True, names_file=str(tmp_path / "missing.txt"))
    with pytest.raises(ConfigError, match="name list"):
        build(make_cases(3, seed=1), demographics)


# --- l-diversity, settings ----------------------------------------------------------------------


def test_l_diversity_on_related_category(config: Config) -> None:
    demographics = with_settings(config, k=5, l=2, sensitive_column="related_category")
    table = build(make_cases(2000, seed=11), demographics)
    frame = independent_frame(table.rows)
    assert table.report.l_achieved == pycanon.l_diversity(frame, QI_COLUMNS, ["related_category"]) >= 2
    assert table.report.k_achieved == pycanon_k(table.rows) >= 5


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"quasi_identifiers": ("year", "shoe_size")}, "shoe_size", id="unknown-qi"),
        pytest.param({"hierarchies": {"zodiac": ({"*": ""},)}}, "zodiac", id="unknown-hierarchy"),
        pytest.param({"l": 2, "sensitive_column": "age_group"}, "sensitive_column", id="sensitive-is-qi"),
    ],
)
def test_bad_settings_raise_config_error(config: Config, changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(make_cases(3, seed=1), with_settings(config, **changes))


def test_config_rejects_l_without_sensitive_column(tmp_path: Path) -> None:
    user = tmp_path / "deid.toml"
    user.write_text("[demographics]\nl = 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="sensitive_column"):
        load_config(user)


def test_user_config_overrides_a_hierarchy(tmp_path: Path) -> None:
    user = tmp_path / "deid.toml"
    user.write_text('[demographics.hierarchies]\nage_group = [{ "*" = "AGE_UNKNOWN" }]\n', encoding="utf-8")
    demographics = load_config(user).demographics
    assert demographics.hierarchies["age_group"] == ({"*": "AGE_UNKNOWN"},)
    assert "fitzpatrick_skin_type" in demographics.hierarchies


# --- CSV output -----------------------------------------------------------------------------------


def test_write_release_csv_escapes_formulas_and_round_trips(config: Config, tmp_path: Path) -> None:
    cases = make_cases(3, seed=12)
    paths = {case.contribution_id: [('=HYPERLINK("http://x")', "CLOSE_UP")] for case in cases}
    table = build_release_table(
        cases,
        with_settings(config, k=1),
        case_ids={case.contribution_id: -(index + 5) for index, case in enumerate(cases)},
        image_paths=paths,
        release="@SUM(1+1)",
    )
    earlier = [dict.fromkeys(SCIN_COLUMNS, "") | {"case_id": "9", "release": "0.9.0", "year": "2022"}]
    table = dataclasses.replace(table, earlier_rows=earlier)
    out = write_release_csv(table, tmp_path / "cases.csv")
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["release"] for row in rows] == ["0.9.0", *["'@SUM(1+1)"] * 3]
    assert rows[1]["image_1_path"].startswith("'=")
    assert rows[1]["case_id"] == "-7"  # sorted by case_id; a plain negative number is not a formula
    assert read_release_csv(out)[0]["case_id"] == "9"
    only_new = write_release_csv(table, tmp_path / "new.csv", include_earlier=False)
    assert len(read_release_csv(only_new)) == 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("=1+2", "'=1+2", id="equals"),
        pytest.param("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0", id="plus"),
        pytest.param("-2+3", "'-2+3", id="minus-formula"),
        pytest.param("@SUM(A1)", "'@SUM(A1)", id="at"),
        pytest.param("\t=1", "'\t=1", id="tab"),
        pytest.param("\r=1", "'\r=1", id="carriage-return"),
        pytest.param("-5156441036700827606", "-5156441036700827606", id="negative-case-id"),
        pytest.param("+3.5", "+3.5", id="signed-number"),
        pytest.param("AGE_18_TO_29", "AGE_18_TO_29", id="plain"),
        pytest.param(None, "", id="none"),
    ],
)
def test_safe_csv_cell(value: str | None, expected: str) -> None:
    from deid.csv_safety import safe_csv_cell

    assert safe_csv_cell(value) == expected


def test_release_csv_errors_are_input_errors(config: Config, tmp_path: Path) -> None:
    from deid.errors import InputError

    with pytest.raises(InputError, match="cannot read"):
        read_release_csv(tmp_path / "missing.csv")
    (tmp_path / "latin1.csv").write_bytes("case_id,year\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match="UTF-8"):
        read_release_csv(tmp_path / "latin1.csv")
    (tmp_path / "other.csv").write_text("id,year\n1,2024\n", encoding="utf-8")
    with pytest.raises(InputError, match="case_id"):
        read_release_csv(tmp_path / "other.csv")
    table = build(make_cases(3, seed=1), with_settings(config, k=1))
    with pytest.raises(InputError, match="cannot write"):
        write_release_csv(table, tmp_path)  # a folder, not a file


def test_nothing_releasable(config: Config) -> None:
    minors = [dataclasses.replace(case, age=12) for case in make_cases(4, seed=1)]
    table = build(minors, with_settings(config, k=5))
    assert table.rows == [] and len(table.held) == 4
    assert (table.report.k_achieved, table.report.information_loss, table.report.meets_k) == (0, 0.0, True)
    few = build(make_cases(3, seed=1), with_settings(config, k=5, min_age=0))
    assert few.rows == [] and len(few.suppressed) == 3
    assert all(reason.startswith("k_anonymity:") for reason in few.suppressed.values())
    assert few.report.information_loss > 0


def test_rows_are_ordered_by_case_id_not_submission(config: Config) -> None:
    table = build(make_cases(200, seed=8), with_settings(config, k=3))
    ids = [int(row["case_id"]) for row in table.rows]
    assert ids == sorted(ids)


@pytest.mark.parametrize("k", [pytest.param(10, id="k10"), pytest.param(25, id="k25")])
def test_generalisation_never_leaves_scin_vocabulary(config: Config, k: int) -> None:
    """Issue 16: a coarser band goes into deid's declared column; the SCIN column stays in SCIN's vocabulary."""
    from deid.anonymity_check import release_classes
    from deid.scin import load_schema

    schema = load_schema()
    table = build(make_cases(400, seed=k, skew=2.5), with_settings(config, k=k))
    assert sum(table.report.cells_generalised.values()) > 0, "the batch must need generalisation to mean anything"
    extras = ("age_group_generalised", "fitzpatrick_skin_type_generalised")
    generalised = [row for row in table.rows if any(row[column] for column in extras)]
    assert generalised
    for row in table.rows:
        for column, value in row.items():
            assert schema.is_in_vocabulary(column, value), f"{column}={value!r} is outside the schema"
    for row in generalised:
        if row["age_group_generalised"]:
            assert row["age_group"] == ""
        if row["fitzpatrick_skin_type_generalised"]:
            assert row["fitzpatrick_skin_type"] == ""
    classes = release_classes(table.rows, config.demographics.quasi_identifiers)
    assert min(classes.values()) == table.report.k_achieved >= k
