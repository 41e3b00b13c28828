"""Demographics: raw self-reported answers to SCIN's published ``scin_cases.csv`` schema.

Pipeline-facing entry points are :func:`build_release_table` (answers ->
bucketed, mitigated, k-anonymous rows plus a report) and
:func:`write_release_csv` (spreadsheet-safe CSV). The k-anonymity engine is
:mod:`deid.anonymity`; free-text scrubbing is :mod:`deid.scrub`.

Release columns
---------------
In the order of SCIN's ``scin_cases.csv`` (google-research-datasets/scin,
``dataset_schema.md`` and the column list of ``scin_demo.ipynb``)::

    case_id, source, release, year, age_group, sex_at_birth, fitzpatrick_skin_type,
    race_ethnicity_{american_indian_or_alaska_native, asian, black_or_african_american,
        hispanic_latino_or_spanish_origin, middle_eastern_or_north_african,
        native_hawaiian_or_pacific_islander, white, other_race, prefer_not_to_answer},
    textures_{raised_or_bumpy, flat, rough_or_flaky, fluid_filled},
    body_parts_{head_or_neck, arm, palm, back_of_hand, torso_front, torso_back,
        genitalia_or_groin, buttocks, leg, foot_top_or_side, foot_sole, other},
    condition_symptoms_{bothersome_appearance, bleeding, increasing_size, darkening,
        itching, burning, pain, no_relevant_experience},
    other_symptoms_{fever, chills, fatigue, joint_pain, mouth_sores,
        shortness_of_breath, no_relevant_symptoms},
    related_category, condition_duration,
    image_1_path, image_2_path, image_3_path,
    image_1_shot_type, image_2_shot_type, image_3_shot_type,
    combined_race, race_ethnicity_two_or_more_after_mitigation
    [, description]            # deid extension, only with keep_free_text

Booleans are ``YES`` or blank, as in SCIN. ``combined_race`` is the selected
race suffixes joined by ``,`` in column order (``asian,white``),
``two_or_more_after_mitigation`` after mitigation, blank when not answered.
``case_id`` is a random signed 64-bit integer (:func:`deid.ids.new_case_id`) that the
ledger keeps stable across releases. ``description`` is not a SCIN column; it
is only added, scrubbed, when ``demographics.keep_free_text`` is set.

Raw answers (``deid.types.Case``) and how they map
--------------------------------------------------
Matching ignores case, spaces, hyphens and underscores. An answer outside the
vocabulary is dropped (a blank cell, or ``body_parts_other`` for a body part)
and counted under ``unrecognised_answers`` in the report, never published.

==================  ==========================================================================
field               accepted raw answers -> release value
==================  ==========================================================================
age                 integer -> ``AGE_18_TO_29`` .. ``AGE_80_OR_ABOVE``; missing ->
                    ``AGE_UNKNOWN``; below ``min_age`` -> case held (SCIN took adults only)
sex                 female/f/woman -> FEMALE; male/m/man -> MALE; other/intersex,
                    prefer not to say, unspecified, missing -> OTHER_OR_UNSPECIFIED
                    (SCIN had too few "other" and "prefer not to say" answers to publish);
                    FEMALE or MALE rarer than ``min_sex_cell`` also merge there
skin_type           ``FST1``..``FST6``, ``1``..``6``, ``I``..``VI``, ``type 3``,
                    ``Fitzpatrick III``; SCIN's tanning answers NEVER_TANS (1),
                    TANS_MINIMALLY (2), TANS_UNIFORMLY (3), ALWAYS_TANS_WELL (4),
                    TANS_EASILY (5), ALWAYS_TANS (6); Fitzpatrick phrases ("always burns,
                    never tans" 1, "usually burns, tans minimally" 2, "sometimes burns,
                    tans uniformly" 3, "rarely burns, tans well" 4, "very rarely burns,
                    tans very easily" 5, "never burns" / "deeply pigmented" 6; a tanning
                    phrase wins over a burning one); none of the above / none / not sure
                    -> NONE_IDENTIFIED (as in SCIN's published data; its schema text says
                    NONE_SELECTED); missing -> blank
race_ethnicity      each element: a column suffix or an alias (black, african american,
                    hispanic, latino/latina/latinx, caucasian, middle eastern, north
                    african, mena, native american, alaska native, native hawaiian,
                    pacific islander, other, prefer not to say); the set is one value
body_parts          column suffixes, plus aliases (face/scalp/neck/ear/eye/nose/lips ->
                    head_or_neck, chest/abdomen -> torso_front, back -> torso_back,
                    hand -> back_of_hand, thigh/knee -> leg, foot -> foot_top_or_side,
                    sole -> foot_sole, groin -> genitalia_or_groin); unknown -> other
symptoms            condition and other symptom suffixes (the column decides which group),
                    with or without their ``condition_symptoms_`` / ``other_symptoms_`` prefix
textures            suffixes, plus raised/bumpy, rough/flaky/scaly, blister/fluid
duration            SCIN's ``condition_duration`` values (plus one to seven days ->
                    LESS_THAN_ONE_WEEK, since birth -> SINCE_CHILDHOOD)
related_category    SCIN's ``related_category`` values (plus mole/growth, pigmentary, nail,
                    hair -> OTHER_HAIR_PROBLEM, other -> OTHER_ISSUE_DESCRIPTION)
description         dropped, unless ``keep_free_text`` (then scrubbed, see :mod:`deid.scrub`)
==================  ==========================================================================

Small cells, k-anonymity
------------------------
Counting always includes rows of earlier releases (``earlier_rows``) and
treats a missing answer as a value of its own. Sex answers that remain rarer
than ``min_sex_cell`` merge into OTHER_OR_UNSPECIFIED; race combinations (two
or more selections) rarer than ``min_race_cell`` become
TWO_OR_MORE_AFTER_MITIGATION, as SCIN did. Then :mod:`deid.anonymity`
enforces k over ``quasi_identifiers`` (``race_ethnicity`` stands for the whole
set as one value) along ``hierarchies``, and optionally l-diversity on
``sensitive_column``.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import re
import secrets
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from deid.anonymity import AnonymityOutcome, Hierarchy, enforce_k_anonymity
from deid.config import DemographicsSettings
from deid.csv_safety import safe_csv_cell
from deid.errors import ConfigError, DeidError, InputError
from deid.ids import new_case_id
from deid.io import write_atomic
from deid.scin import load_schema
from deid.scrub import TextScrubber, load_name_list
from deid.types import Case, ShotType

AGE_BANDS: tuple[tuple[int, int, str], ...] = (
    (18, 29, "AGE_18_TO_29"),
    (30, 39, "AGE_30_TO_39"),
    (40, 49, "AGE_40_TO_49"),
    (50, 59, "AGE_50_TO_59"),
    (60, 69, "AGE_60_TO_69"),
    (70, 79, "AGE_70_TO_79"),
)
AGE_UNKNOWN = "AGE_UNKNOWN"
FEMALE, MALE, OTHER_OR_UNSPECIFIED = "FEMALE", "MALE", "OTHER_OR_UNSPECIFIED"
NONE_IDENTIFIED = "NONE_IDENTIFIED"
NONE_SELECTED = NONE_IDENTIFIED  # the name SCIN's schema text uses; its published data says NONE_IDENTIFIED
YES = "YES"
TWO_OR_MORE = "two_or_more_after_mitigation"
RACE_QI = "race_ethnicity"

RACE_SUFFIXES = (
    "american_indian_or_alaska_native",
    "asian",
    "black_or_african_american",
    "hispanic_latino_or_spanish_origin",
    "middle_eastern_or_north_african",
    "native_hawaiian_or_pacific_islander",
    "white",
    "other_race",
    "prefer_not_to_answer",
)
TEXTURES = ("raised_or_bumpy", "flat", "rough_or_flaky", "fluid_filled")
BODY_PARTS = (
    "head_or_neck",
    "arm",
    "palm",
    "back_of_hand",
    "torso_front",
    "torso_back",
    "genitalia_or_groin",
    "buttocks",
    "leg",
    "foot_top_or_side",
    "foot_sole",
    "other",
)
CONDITION_SYMPTOMS = (
    "bothersome_appearance",
    "bleeding",
    "increasing_size",
    "darkening",
    "itching",
    "burning",
    "pain",
    "no_relevant_experience",
)
OTHER_SYMPTOMS = (
    "fever",
    "chills",
    "fatigue",
    "joint_pain",
    "mouth_sores",
    "shortness_of_breath",
    "no_relevant_symptoms",
)
RELATED_CATEGORIES = (
    "ACNE",
    "GROWTH_OR_MOLE",
    "HAIR_LOSS",
    "OTHER_HAIR_PROBLEM",
    "NAIL_PROBLEM",
    "PIGMENTARY_PROBLEM",
    "RASH",
    "LOOKS_HEALTHY",
    "OTHER_ISSUE_DESCRIPTION",
)
DURATIONS = (
    "ONE_DAY",
    "LESS_THAN_ONE_WEEK",
    "ONE_TO_FOUR_WEEKS",
    "ONE_TO_THREE_MONTHS",
    "THREE_TO_TWELVE_MONTHS",
    "MORE_THAN_ONE_YEAR",
    "MORE_THAN_FIVE_YEARS",
    "SINCE_CHILDHOOD",
    "UNKNOWN",
)
SCIN_COLUMNS: tuple[str, ...] = (
    "case_id",
    "source",
    "release",
    "year",
    "age_group",
    "sex_at_birth",
    "fitzpatrick_skin_type",
    *(f"race_ethnicity_{suffix}" for suffix in RACE_SUFFIXES),
    *(f"textures_{suffix}" for suffix in TEXTURES),
    *(f"body_parts_{suffix}" for suffix in BODY_PARTS),
    *(f"condition_symptoms_{suffix}" for suffix in CONDITION_SYMPTOMS),
    *(f"other_symptoms_{suffix}" for suffix in OTHER_SYMPTOMS),
    "related_category",
    "condition_duration",
    "image_1_path",
    "image_2_path",
    "image_3_path",
    "image_1_shot_type",
    "image_2_shot_type",
    "image_3_shot_type",
    "combined_race",
    f"race_ethnicity_{TWO_OR_MORE}",
)
DESCRIPTION_COLUMN = "description"
# deid's own columns after SCIN's (declared in deid/data/scin_schema.json): a coarser value that
# k-anonymity needed goes here, never into the SCIN column, whose vocabulary has no such value.
GENERALISED_COLUMNS: dict[str, str] = {
    spec.generalises: spec.name for spec in load_schema().extra_columns if spec.generalises
}
RELEASE_COLUMNS: tuple[str, ...] = (*SCIN_COLUMNS, *(spec.name for spec in load_schema().extra_columns))
QUASI_IDENTIFIER_CHOICES = (
    RACE_QI,
    "year",
    "age_group",
    "sex_at_birth",
    "fitzpatrick_skin_type",
    "related_category",
    "condition_duration",
    *(f"textures_{suffix}" for suffix in TEXTURES),
    *(f"body_parts_{suffix}" for suffix in BODY_PARTS),
    *(f"condition_symptoms_{suffix}" for suffix in CONDITION_SYMPTOMS),
    *(f"other_symptoms_{suffix}" for suffix in OTHER_SYMPTOMS),
)


_NOT_ALPHANUMERIC = re.compile(r"[^0-9a-z]+")


@functools.lru_cache(maxsize=8192)
def _key(text: str) -> str:
    """Normal form for matching: lower case, words separated by one space (cached: answers repeat)."""
    return " ".join(_NOT_ALPHANUMERIC.sub(" ", text.lower()).split())


def _vocabulary(canonical: Iterable[str], aliases: Mapping[str, str] | None = None) -> dict[str, str]:
    table = {_key(value): value for value in canonical}
    table.update({_key(alias): value for alias, value in (aliases or {}).items()})
    return table


_SEX = _vocabulary(
    [FEMALE, MALE, OTHER_OR_UNSPECIFIED],
    {
        "f": FEMALE,
        "woman": FEMALE,
        "girl": FEMALE,
        "m": MALE,
        "man": MALE,
        "boy": MALE,
        "other": "OTHER",
        "intersex": "OTHER",
        "prefer not to say": "PREFER_NOT_TO_SAY",
        "prefer not to answer": "PREFER_NOT_TO_SAY",
        "unspecified": OTHER_OR_UNSPECIFIED,
        "unknown": OTHER_OR_UNSPECIFIED,
        "not specified": OTHER_OR_UNSPECIFIED,
    },
)
_RACE = _vocabulary(
    [*RACE_SUFFIXES, TWO_OR_MORE],
    {
        "american indian": "american_indian_or_alaska_native",
        "alaska native": "american_indian_or_alaska_native",
        "native american": "american_indian_or_alaska_native",
        "black": "black_or_african_american",
        "african american": "black_or_african_american",
        "hispanic": "hispanic_latino_or_spanish_origin",
        "latino": "hispanic_latino_or_spanish_origin",
        "latina": "hispanic_latino_or_spanish_origin",
        "latinx": "hispanic_latino_or_spanish_origin",
        "hispanic or latino": "hispanic_latino_or_spanish_origin",
        "spanish origin": "hispanic_latino_or_spanish_origin",
        "middle eastern": "middle_eastern_or_north_african",
        "north african": "middle_eastern_or_north_african",
        "mena": "middle_eastern_or_north_african",
        "native hawaiian": "native_hawaiian_or_pacific_islander",
        "pacific islander": "native_hawaiian_or_pacific_islander",
        "caucasian": "white",
        "other": "other_race",
        "prefer not to say": "prefer_not_to_answer",
    },
)
_BODY_PARTS = _vocabulary(
    BODY_PARTS,
    {
        **dict.fromkeys(
            ["head", "face", "neck", "scalp", "ear", "eye", "nose", "lips", "mouth", "forehead"], "head_or_neck"
        ),
        **dict.fromkeys(["arms", "elbow", "forearm", "upper arm", "shoulder", "wrist"], "arm"),
        **dict.fromkeys(["hand", "hands", "finger", "fingers"], "back_of_hand"),
        **dict.fromkeys(["chest", "abdomen", "belly", "stomach", "breast", "torso"], "torso_front"),
        **dict.fromkeys(["back", "upper back", "lower back"], "torso_back"),
        **dict.fromkeys(["groin", "genitals", "genitalia", "genital"], "genitalia_or_groin"),
        **dict.fromkeys(["buttock", "bottom"], "buttocks"),
        **dict.fromkeys(["legs", "thigh", "knee", "shin", "calf", "ankle"], "leg"),
        **dict.fromkeys(["foot", "feet", "toe", "toes"], "foot_top_or_side"),
        **dict.fromkeys(["sole"], "foot_sole"),
    },
)
_TEXTURES = _vocabulary(
    TEXTURES,
    {
        "raised": "raised_or_bumpy",
        "bumpy": "raised_or_bumpy",
        "rough": "rough_or_flaky",
        "flaky": "rough_or_flaky",
        "scaly": "rough_or_flaky",
        "fluid": "fluid_filled",
        "blister": "fluid_filled",
        "blisters": "fluid_filled",
    },
)
_SYMPTOMS = {
    **{_key(s): f"condition_symptoms_{s}" for s in CONDITION_SYMPTOMS},
    **{_key(f"condition_symptoms_{s}"): f"condition_symptoms_{s}" for s in CONDITION_SYMPTOMS},
    **{_key(s): f"other_symptoms_{s}" for s in OTHER_SYMPTOMS},
    **{_key(f"other_symptoms_{s}"): f"other_symptoms_{s}" for s in OTHER_SYMPTOMS},
    **{
        _key(alias): f"condition_symptoms_{s}"
        for alias, s in {
            "itch": "itching",
            "itchy": "itching",
            "bleeds": "bleeding",
            "growing": "increasing_size",
            "painful": "pain",
            "sore": "pain",
        }.items()
    },
    **{_key(alias): f"other_symptoms_{s}" for alias, s in {"tired": "fatigue", "tiredness": "fatigue"}.items()},
}
_RELATED = _vocabulary(
    RELATED_CATEGORIES,
    {
        "mole": "GROWTH_OR_MOLE",
        "growth": "GROWTH_OR_MOLE",
        "pigmentary": "PIGMENTARY_PROBLEM",
        "pigmentation": "PIGMENTARY_PROBLEM",
        "nail": "NAIL_PROBLEM",
        "hair": "OTHER_HAIR_PROBLEM",
        "other": "OTHER_ISSUE_DESCRIPTION",
    },
)
_DURATIONS = _vocabulary(DURATIONS, {"one to seven days": "LESS_THAN_ONE_WEEK", "since birth": "SINCE_CHILDHOOD"})
_FST_NUMBER = re.compile(r"^(?:(?:fitzpatrick|skin|type|fst)\s*)*(?P<n>[1-6]|iii|ii|iv|vi|v|i)$")
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6}
_FST_NONE = {
    _key(text) for text in ("none of the above", "none selected", "none identified", "none", "not sure", "unsure")
}
_TAN_PHRASES: tuple[tuple[re.Pattern[str], int], ...] = tuple(
    (re.compile(pattern), fst)
    for pattern, fst in (
        (r"\bnever tans?\b", 1),
        (r"\btans? (?:minimally|slightly|poorly|a little)\b|\brarely tans?\b", 2),
        (r"\btans? (?:uniformly|gradually|moderately|evenly)\b|\bsometimes tans?\b", 3),
        (r"\btans? well\b", 4),
        (r"\btans? (?:very )?easily\b", 5),
        (r"\bdeeply pigmented\b|\balways tans?\b", 6),
    )
)
_BURN_PHRASES: tuple[tuple[re.Pattern[str], int], ...] = tuple(
    (re.compile(pattern), fst)
    for pattern, fst in (
        (r"\bnever burns?\b", 6),
        (r"\bvery rarely burns?\b", 5),
        (r"\b(?:rarely|minimally) burns?\b|\bburns? minimally\b", 4),
        (r"\bsometimes burns?\b|\bburns? moderately\b|\bmild burn\b", 3),
        (r"\busually burns?\b", 2),
        (r"\balways burns?\b|\bburns? (?:very )?easily\b", 1),
    )
)


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


def map_sex(raw: str | None) -> str | None:
    """Raw sex answer to ``FEMALE``, ``MALE``, ``OTHER``, ``PREFER_NOT_TO_SAY`` or ``OTHER_OR_UNSPECIFIED``.

    Missing maps to ``OTHER_OR_UNSPECIFIED``; ``None`` means not in the vocabulary.

    Examples
    --------
    >>> map_sex("f"), map_sex("Prefer not to say"), map_sex(None), map_sex("???")
    ('FEMALE', 'PREFER_NOT_TO_SAY', 'OTHER_OR_UNSPECIFIED', None)
    """
    if raw is None or not raw.strip():
        return OTHER_OR_UNSPECIFIED
    return _SEX.get(_key(raw))


def map_skin_type(raw: str | None) -> str | None:
    """Raw skin type answer to ``FST1``..``FST6``, ``NONE_IDENTIFIED`` or blank (missing).

    ``None`` means the answer is not in the vocabulary (see the module docstring).

    Examples
    --------
    >>> map_skin_type("FST3"), map_skin_type("IV"), map_skin_type("burns easily, never tans")
    ('FST3', 'FST4', 'FST1')
    >>> map_skin_type("TANS_MINIMALLY"), map_skin_type("none of the above"), map_skin_type(None)
    ('FST2', 'NONE_IDENTIFIED', '')
    """
    if raw is None or not raw.strip():
        return ""
    text = _key(raw)
    number = _FST_NUMBER.match(text)
    if number:
        value = number["n"]
        return f"FST{value if value.isdigit() else _ROMAN[value]}"
    if text in _FST_NONE or text == _key("NONE_SELECTED"):
        return NONE_IDENTIFIED
    for phrases in (_TAN_PHRASES, _BURN_PHRASES):
        for pattern, fst in phrases:
            if pattern.search(text):
                return f"FST{fst}"
    return None


def map_race(raw: Iterable[str]) -> tuple[frozenset[str], int]:
    """Raw race/ethnicity selections to column suffixes, and how many were not recognised.

    Examples
    --------
    >>> sorted(map_race({"Black", "white", "martian"})[0]), map_race({"martian"})[1]
    (['black_or_african_american', 'white'], 1)
    """
    found, unknown = set(), 0
    for answer in raw:
        suffix = _RACE.get(_key(answer))
        if suffix is None:
            unknown += 1
        else:
            found.add(suffix)
    return frozenset(found), unknown


def combined_race(suffixes: Iterable[str]) -> str:
    """The one-value form of a race set: suffixes in column order joined by ``,``.

    Examples
    --------
    >>> combined_race({"white", "asian"}), combined_race(set())
    ('asian,white', '')
    """
    chosen = set(suffixes)
    if TWO_OR_MORE in chosen:
        return TWO_OR_MORE
    return ",".join(suffix for suffix in RACE_SUFFIXES if suffix in chosen)


@dataclass(frozen=True, slots=True)
class AnonymityReport:
    """What bucketing, mitigation, scrubbing and k-anonymity did to a release.

    ``information_loss`` is the mean normalised certainty penalty added per
    quasi-identifier cell of the new rows (0 = nothing lost, 1 = all blanked
    or suppressed; see :mod:`deid.anonymity`); ``discernibility`` is the
    classic discernibility metric. ``k_achieved`` counts every class of the
    release, earlier rows included; ``k_achieved_new_rows`` only classes that
    hold new rows.
    """

    release: str
    k_target: int
    k_achieved: int
    k_achieved_new_rows: int
    l_target: int
    l_achieved: int | None
    sensitive_column: str
    quasi_identifiers: tuple[str, ...]
    cases_in: int
    rows_released: int
    rows_earlier: int
    cases_held: int
    held_reasons: dict[str, int]
    cases_suppressed: int
    cells_generalised: dict[str, int]
    cells_blanked: dict[str, int]
    information_loss: float
    discernibility: int
    equivalence_classes: int
    earlier_classes_below_k: int
    earlier_rows_below_k: int
    sex_merged: dict[str, int]
    race_combinations_merged: int
    race_rows_merged: int
    unrecognised_answers: dict[str, int]
    free_text_kept: bool
    free_text_removed: dict[str, int]
    recodings: dict[str, int] = field(default_factory=dict)
    information_loss_metric: str = "normalised certainty penalty (mean per QI cell of new rows)"

    @property
    def meets_k(self) -> bool:
        """True when every class of the release has at least ``k_target`` rows."""
        return self.rows_released + self.rows_earlier == 0 or self.k_achieved >= self.k_target

    def to_json(self) -> dict[str, object]:
        """JSON form for the CLI, the ledger and the data card."""
        return {
            "release": self.release,
            "k_target": self.k_target,
            "k_achieved": self.k_achieved,
            "k_achieved_new_rows": self.k_achieved_new_rows,
            "meets_k": self.meets_k,
            "l_target": self.l_target,
            "l_achieved": self.l_achieved,
            "sensitive_column": self.sensitive_column,
            "quasi_identifiers": list(self.quasi_identifiers),
            "cases_in": self.cases_in,
            "rows_released": self.rows_released,
            "rows_earlier": self.rows_earlier,
            "cases_held": self.cases_held,
            "held_reasons": dict(self.held_reasons),
            "cases_suppressed": self.cases_suppressed,
            "cells_generalised": dict(self.cells_generalised),
            "cells_blanked": dict(self.cells_blanked),
            "information_loss": round(self.information_loss, 6),
            "information_loss_metric": self.information_loss_metric,
            "discernibility": self.discernibility,
            "equivalence_classes": self.equivalence_classes,
            "earlier_classes_below_k": self.earlier_classes_below_k,
            "earlier_rows_below_k": self.earlier_rows_below_k,
            "sex_merged": dict(self.sex_merged),
            "race_combinations_merged": self.race_combinations_merged,
            "race_rows_merged": self.race_rows_merged,
            "unrecognised_answers": dict(self.unrecognised_answers),
            "free_text_kept": self.free_text_kept,
            "free_text_removed": dict(self.free_text_removed),
            "recodings": dict(self.recodings),
        }


@dataclass(frozen=True, slots=True)
class ReleaseTable:
    """The public case table of a release and what was kept out of it.

    ``rows`` are this release's new rows (``columns`` order, values are
    strings, sorted by ``case_id`` so their order leaks no submission
    order); ``earlier_rows`` the rows of earlier releases as given, which
    counted toward k; ``held`` maps contribution ids to the reason a person
    must look (for example under 18); ``suppressed`` those k-anonymity
    removed.
    """

    columns: tuple[str, ...]
    rows: list[dict[str, str]]
    held: dict[str, str]
    suppressed: dict[str, str]
    report: AnonymityReport
    earlier_rows: list[dict[str, str]] = field(default_factory=list)


def release_columns(settings: DemographicsSettings) -> tuple[str, ...]:
    """The columns of the release CSV: SCIN's, deid's generalised ones, ``description`` when free text is kept."""
    return (*RELEASE_COLUMNS, DESCRIPTION_COLUMN) if settings.keep_free_text else RELEASE_COLUMNS


def build_hierarchies(settings: DemographicsSettings) -> dict[str, Hierarchy]:
    """The configured generalisation hierarchies as :class:`~deid.anonymity.Hierarchy` objects."""
    return {name: Hierarchy(tuple(dict(level) for level in levels)) for name, levels in settings.hierarchies.items()}


def build_release_table(
    cases: Sequence[Case],
    settings: DemographicsSettings,
    *,
    case_ids: Mapping[str, int],
    image_paths: Mapping[str, Sequence[tuple[str, str]]],
    release: str,
    earlier_rows: Sequence[Mapping[str, str]] = (),
) -> ReleaseTable:
    """Map, mitigate, scrub and k-anonymise a batch of cases into release rows.

    Parameters
    ----------
    cases
        The batch's contributions (raw answers).
    settings
        ``[demographics]`` of the configuration.
    case_ids
        ``contribution_id -> case_id`` from the ledger (new ids from
        :func:`deid.ids.new_case_id`); a case without one is held.
    image_paths
        ``contribution_id -> [(release image path, shot type), ...]`` for the
        images that made it (at most 3); a case without any is held.
    release
        The release identifier written in the ``release`` column.
    earlier_rows
        Rows of earlier releases (SCIN columns): fixed and public, they count
        toward small cells and k.

    Returns
    -------
    ReleaseTable
        Rows in SCIN column order, held and suppressed cases with reasons,
        and the :class:`AnonymityReport`.

    Raises
    ------
    ConfigError
        If a quasi-identifier, hierarchy or sensitive column is not a release
        column, or the name list cannot be read.

    Examples
    --------
    >>> from deid.config import load_config
    >>> settings = load_config().demographics
    >>> cases = [Case(f"c{i}", "2024-05-01T10:00:00Z", age=34, sex="female", skin_type="3") for i in range(5)]
    >>> table = build_release_table(
    ...     cases, settings, case_ids={c.contribution_id: i + 1 for i, c in enumerate(cases)},
    ...     image_paths={c.contribution_id: [(f"images/{i}.png", "CLOSE_UP")] for i, c in enumerate(cases)},
    ...     release="1.0.0")
    >>> row = table.rows[0]
    >>> row["age_group"], row["sex_at_birth"], row["fitzpatrick_skin_type"], table.report.k_achieved
    ('AGE_30_TO_39', 'FEMALE', 'FST3', 5)
    """
    columns = release_columns(settings)
    _check_settings(settings)
    names = tuple(settings.names)
    if settings.keep_free_text and settings.names_file:
        names += load_name_list(settings.names_file)
    scrubber = TextScrubber(names) if settings.keep_free_text else None

    earlier = [{column: str(row.get(column, "") or "") for column in columns} for row in earlier_rows]
    earlier_ids = {row["case_id"] for row in earlier if row["case_id"]}
    template = dict.fromkeys(columns, "")
    template["source"] = settings.source
    template["release"] = release

    held: dict[str, str] = {}
    unrecognised: Counter[str] = Counter()
    rows: list[dict[str, str]] = []
    row_ids: list[str] = []
    raw_sex: list[str] = []
    race_sets: list[frozenset[str]] = []
    seen_ids: set[str] = set()
    seen_case_ids: set[str] = set()
    for case in cases:
        reason = _hold_reason(case, settings, case_ids, image_paths, seen_ids, seen_case_ids, earlier_ids)
        seen_ids.add(case.contribution_id)
        if reason:
            held[case.contribution_id] = reason
            continue
        case_id = str(case_ids[case.contribution_id])
        seen_case_ids.add(case_id)
        row, sex, races = _map_case(case, template, image_paths[case.contribution_id], unrecognised)
        row["case_id"] = case_id
        rows.append(row)
        row_ids.append(case.contribution_id)
        raw_sex.append(sex)
        race_sets.append(races)

    sex_merged = _mitigate_sex(rows, raw_sex, earlier, settings.min_sex_cell)
    race_values, combinations_merged, race_rows_merged = _mitigate_race(race_sets, earlier, settings.min_race_cell)
    for row, value in zip(rows, race_values, strict=True):
        _write_race(row, value)

    qis = tuple(settings.quasi_identifiers)
    sensitive = settings.sensitive_column if settings.l > 1 else ""
    outcome = enforce_k_anonymity(
        [tuple(_qi_value(row, name) for name in qis) for row in rows],
        quasi_identifiers=qis,
        hierarchies=build_hierarchies(settings),
        k=settings.k,
        fixed_rows=[tuple(_qi_value(row, name) for name in qis) for row in earlier],
        new_sensitive=[row.get(sensitive, "") for row in rows] if sensitive else None,
        fixed_sensitive=[row.get(sensitive, "") for row in earlier] if sensitive else None,
        l_diversity=settings.l,
    )
    released, suppressed = _apply_outcome(rows, row_ids, outcome, qis, settings)

    removed: Counter[str] = Counter()
    if scrubber is not None:
        descriptions = {case.contribution_id: case.description for case in cases}
        for row, contribution_id in released:
            result = scrubber.scrub(descriptions[contribution_id])
            row[DESCRIPTION_COLUMN] = result.text
            removed.update(result.counts)

    report = AnonymityReport(
        release=release,
        k_target=settings.k,
        k_achieved=outcome.k_achieved,
        k_achieved_new_rows=outcome.k_achieved_new_rows,
        l_target=settings.l,
        l_achieved=outcome.l_achieved,
        sensitive_column=sensitive,
        quasi_identifiers=qis,
        cases_in=len(cases),
        rows_released=len(released),
        rows_earlier=len(earlier),
        cases_held=len(held),
        held_reasons=dict(Counter(reason.split(":", 1)[0] for reason in held.values())),
        cases_suppressed=len(suppressed),
        cells_generalised=outcome.cells_generalised,
        cells_blanked=outcome.cells_blanked,
        information_loss=outcome.information_loss,
        discernibility=outcome.discernibility,
        equivalence_classes=outcome.classes,
        earlier_classes_below_k=outcome.earlier_classes_below_k,
        earlier_rows_below_k=outcome.earlier_rows_below_k,
        sex_merged=sex_merged,
        race_combinations_merged=combinations_merged,
        race_rows_merged=race_rows_merged,
        unrecognised_answers=dict(unrecognised),
        free_text_kept=settings.keep_free_text,
        free_text_removed=dict(removed),
        recodings=outcome.nodes_used,
    )
    # Sorted by the random case_id, so row order says nothing about submission order.
    ordered = sorted((row for row, _ in released), key=lambda row: int(row["case_id"]))
    return ReleaseTable(columns, ordered, held, suppressed, report, earlier)


def write_release_csv(table: ReleaseTable, path: str | Path, *, include_earlier: bool = True) -> Path:
    """Write the release ``cases.csv`` with every cell made spreadsheet-safe.

    Parameters
    ----------
    table
        From :func:`build_release_table`.
    path
        Where to write (UTF-8, ``\\n`` line ends, header first).
    include_earlier
        Write the rows of earlier releases first, so the file is the whole
        cumulative table as SCIN publishes it (each row names its ``release``).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    InputError
        If the file cannot be written.
    """
    target = Path(path)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.columns)
    for row in [*(table.earlier_rows if include_earlier else []), *table.rows]:
        writer.writerow([safe_csv_cell(row.get(column, "")) for column in table.columns])
    try:
        return write_atomic(target, buffer.getvalue().encode("utf-8"))
    except DeidError as error:  # the path is the user's (deid bucket --out): an input problem
        raise InputError(f"cannot write release table: {error.message}", path=target) from error


def read_release_csv(path: str | Path) -> list[dict[str, str]]:
    """Read a published release ``cases.csv`` (for example an earlier release).

    Raises
    ------
    InputError
        If the file cannot be read, is not UTF-8 CSV, or has no ``case_id`` column.
    """
    file = Path(path)
    try:
        text = file.read_text("utf-8-sig")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = [{key: value or "" for key, value in row.items() if key is not None} for row in reader]
    except OSError as error:
        raise InputError(f"cannot read release table: {error.strerror}", path=file) from error
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"not a UTF-8 CSV release table: {error}", path=file) from error
    if "case_id" not in (reader.fieldnames or []):
        raise InputError("release table has no case_id column", path=file, hint="pass a cases.csv written by deid")
    return rows


def bucket_cases(
    cases: Sequence[Case],
    settings: DemographicsSettings,
    *,
    out: str | Path,
    release: str,
    k: int | None = None,
    earlier_csv: str | Path | None = None,
    mapping_out: str | Path | None = None,
) -> tuple[ReleaseTable, Path | None]:
    """Build and write a release table outside the flow (the ``deid bucket`` command).

    Without a ledger, every case gets a fresh :func:`deid.ids.new_case_id` and every
    image a random opaque name (``images/<16 hex>.png``); ``mapping_out``, if
    given, receives the private link (contribution, case id, image given, name
    in the release). Keep that file private.

    Parameters
    ----------
    cases
        Parsed contributions.
    settings
        ``[demographics]``; ``k`` overrides ``settings.k``.
    out
        The release ``cases.csv`` to write.
    release
        The release id.
    k
        k-anonymity target, if not the configured one.
    earlier_csv
        ``cases.csv`` of earlier releases, counted toward small cells and k.
    mapping_out
        Private mapping CSV to write, if any.

    Returns
    -------
    tuple
        The :class:`ReleaseTable` and the mapping path (or ``None``).

    Raises
    ------
    ConfigError
        If ``k`` is below 1 or the settings are inconsistent.
    InputError
        If a file cannot be read or written.
    """
    if k is not None:
        settings = dataclasses.replace(settings, k=k)
    earlier = read_release_csv(earlier_csv) if earlier_csv is not None else []
    case_ids = {case.contribution_id: new_case_id() for case in cases}
    given: dict[str, list[tuple[str, str, str]]] = {
        case.contribution_id: [
            (image.file, f"images/{secrets.token_hex(8)}.png", str(image.shot_type or "")) for image in case.images
        ]
        for case in cases
    }
    image_paths = {key: [(name, shot) for _, name, shot in images] for key, images in given.items()}
    table = build_release_table(
        cases, settings, case_ids=case_ids, image_paths=image_paths, release=release, earlier_rows=earlier
    )
    write_release_csv(table, out)
    if mapping_out is None:
        return table, None
    released = {row["case_id"] for row in table.rows}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["contribution_id", "case_id", "image_given", "image_release"])
    for contribution_id, images in given.items():
        case_id = str(case_ids[contribution_id])
        if case_id in released:
            for original, name, _ in images:
                writer.writerow([safe_csv_cell(v) for v in (contribution_id, case_id, original, name)])
    target = Path(mapping_out)
    try:
        target.write_text(buffer.getvalue(), encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot write mapping: {error.strerror}", path=target) from error
    return table, target


def _check_settings(settings: DemographicsSettings) -> None:
    valid = ", ".join(QUASI_IDENTIFIER_CHOICES)
    for name in settings.quasi_identifiers:
        if name not in QUASI_IDENTIFIER_CHOICES:
            raise ConfigError(f"demographics.quasi_identifiers: unknown column {name!r}", hint=f"use some of {valid}")
    for name in settings.hierarchies:
        if name not in QUASI_IDENTIFIER_CHOICES:
            raise ConfigError(f"demographics.hierarchies: unknown column {name!r}", hint=f"use some of {valid}")
    sensitive = settings.sensitive_column
    if settings.l > 1 and (sensitive not in SCIN_COLUMNS or sensitive in settings.quasi_identifiers):
        raise ConfigError(
            f"demographics.sensitive_column {sensitive!r} must be a release column that is not a quasi-identifier",
            hint="for example related_category, or set demographics.l = 1",
        )


def _hold_reason(
    case: Case,
    settings: DemographicsSettings,
    case_ids: Mapping[str, int],
    image_paths: Mapping[str, Sequence[tuple[str, str]]],
    seen_ids: set[str],
    seen_case_ids: set[str],
    earlier_ids: set[str],
) -> str:
    """Why a case cannot be released as it is, or ``""``."""
    if case.contribution_id in seen_ids:
        return "duplicate_contribution: the contribution_id appears twice in the batch"
    if case.age is not None and case.age < settings.min_age:
        return f"under_min_age: the self-reported age is below demographics.min_age {settings.min_age}"
    if not year_of(case.submitted_at):
        return f"invalid_submitted_at: {case.submitted_at[:40]!r} is not an ISO-8601 timestamp"
    if case.contribution_id not in case_ids:
        return "no_case_id: the ledger gave this contribution no case_id"
    case_id = str(case_ids[case.contribution_id])
    if case_id in seen_case_ids or case_id in earlier_ids:
        return f"case_id_conflict: case_id {case_id} is already used in this or an earlier release"
    images = image_paths.get(case.contribution_id, ())
    if not images:
        return "no_released_images: no image of this case made it to the release"
    if len(images) > 3:
        return f"too_many_images: {len(images)} images, the release schema has room for 3"
    for _, shot in images:
        if shot and shot not in ShotType.__members__:
            return f"invalid_shot_type: {shot[:40]!r} is not one of {', '.join(ShotType.__members__)}"
    return ""


def _map_case(
    case: Case, template: Mapping[str, str], images: Sequence[tuple[str, str]], unrecognised: Counter[str]
) -> tuple[dict[str, str], str, frozenset[str]]:
    """One case's row (race and sex still raw), its raw sex category and race set."""
    row = dict(template)
    row["year"] = year_of(case.submitted_at)
    row["age_group"] = bucket_age(case.age)
    sex = map_sex(case.sex)
    if sex is None:
        unrecognised["sex"] += 1
        sex = OTHER_OR_UNSPECIFIED
    fst = map_skin_type(case.skin_type)
    if fst is None:
        unrecognised["skin_type"] += 1
        fst = ""
    row["fitzpatrick_skin_type"] = fst
    races, unknown_races = map_race(case.race_ethnicity)
    if unknown_races:
        unrecognised["race_ethnicity"] += unknown_races
    for answer in case.textures:
        texture = _TEXTURES.get(_key(answer.removeprefix("textures_")))
        if texture is None:
            unrecognised["textures"] += 1
        else:
            row[f"textures_{texture}"] = YES
    for answer in case.body_parts:
        part = _BODY_PARTS.get(_key(answer.removeprefix("body_parts_")))
        if part is None:
            unrecognised["body_parts"] += 1
            part = "other"
        row[f"body_parts_{part}"] = YES
    for answer in case.symptoms:
        column = _SYMPTOMS.get(_key(answer))
        if column is None:
            unrecognised["symptoms"] += 1
        else:
            row[column] = YES
    for value, table, column, label in (
        (case.related_category, _RELATED, "related_category", "related_category"),
        (case.duration, _DURATIONS, "condition_duration", "duration"),
    ):
        if value and value.strip():
            mapped = table.get(_key(value))
            if mapped is None:
                unrecognised[label] += 1
            else:
                row[column] = mapped
    for index, (path, shot) in enumerate(images, start=1):
        row[f"image_{index}_path"] = path
        row[f"image_{index}_shot_type"] = shot
    return row, sex, races


def _mitigate_sex(
    rows: list[dict[str, str]], raw: list[str], earlier: list[dict[str, str]], minimum: int
) -> dict[str, int]:
    """Publish FEMALE / MALE only when common enough; everything else is OTHER_OR_UNSPECIFIED."""
    counts = Counter(raw) + Counter(row["sex_at_birth"] for row in earlier)
    merged: Counter[str] = Counter()
    for row, answer in zip(rows, raw, strict=True):
        if answer in (FEMALE, MALE) and counts[answer] >= minimum:
            row["sex_at_birth"] = answer
        else:
            row["sex_at_birth"] = OTHER_OR_UNSPECIFIED
            if answer != OTHER_OR_UNSPECIFIED:
                merged[answer] += 1
    return dict(merged)


def _mitigate_race(
    sets: list[frozenset[str]], earlier: list[dict[str, str]], minimum: int
) -> tuple[list[str], int, int]:
    """Race combinations (2+ selections) rarer than ``minimum`` become two_or_more_after_mitigation."""
    values = [combined_race(races) for races in sets]
    counts = Counter(values) + Counter(_earlier_race(row) for row in earlier)
    rare = {value for value in set(values) if "," in value and counts[value] < minimum}
    mitigated = [TWO_OR_MORE if value in rare else value for value in values]
    return mitigated, len(rare), sum(value in rare for value in values)


def _earlier_race(row: Mapping[str, str]) -> str:
    chosen = {suffix for suffix in (*RACE_SUFFIXES, TWO_OR_MORE) if row.get(f"race_ethnicity_{suffix}") == YES}
    return combined_race(chosen)


def _write_race(row: dict[str, str], value: str) -> None:
    chosen = set(value.split(",")) if value else set()
    for suffix in (*RACE_SUFFIXES, TWO_OR_MORE):
        row[f"race_ethnicity_{suffix}"] = YES if suffix in chosen else ""
    row["combined_race"] = value


def _qi_value(row: Mapping[str, str], name: str) -> str:
    """The value k-anonymity counts: the race set, else the generalised column when it is filled."""
    if name == RACE_QI:
        return _earlier_race(row)
    generalised = row.get(GENERALISED_COLUMNS.get(name, ""), "")
    return generalised or row.get(name, "")


def _write_qi(row: dict[str, str], name: str, value: str) -> None:
    """Write a published value: inside SCIN's vocabulary into the SCIN column, else into deid's column.

    A value outside the vocabulary with no deid column is blanked. Both maps
    are one-to-one or merge classes, so every class keeps at least k rows.
    """
    schema = load_schema()
    extra = GENERALISED_COLUMNS.get(name)
    if extra is not None:
        row[extra] = ""
    if schema.is_in_vocabulary(name, value):
        row[name] = value
    elif extra is not None:
        row[name] = ""
        row[extra] = value
    else:
        row[name] = ""


def _apply_outcome(
    rows: list[dict[str, str]],
    row_ids: list[str],
    outcome: AnonymityOutcome,
    qis: tuple[str, ...],
    settings: DemographicsSettings,
) -> tuple[list[tuple[dict[str, str], str]], dict[str, str]]:
    """Write recoded values into the rows; collect the suppressed ones."""
    released: list[tuple[dict[str, str], str]] = []
    suppressed: dict[str, str] = {}
    what = f"k={settings.k}" + (f", l={settings.l} on {settings.sensitive_column}" if settings.l > 1 else "")
    for row, contribution_id, values in zip(rows, row_ids, outcome.published, strict=True):
        if values is None:
            suppressed[contribution_id] = f"k_anonymity: no recoding along the hierarchies gives a class with {what}"
            continue
        for name, value in zip(qis, values, strict=True):
            if name == RACE_QI:
                _write_race(row, value)
            else:
                _write_qi(row, name, value)
        released.append((row, contribution_id))
    return released, suppressed
