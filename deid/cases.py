"""Reading contributions: ``cases.csv`` rows into :class:`~deid.types.Case` records.

Input schema (one row per contribution; multi-select cells are ``;``-separated):

=================  ==========================================================
column             meaning
=================  ==========================================================
contribution_id    the submitter system's id (required, unique in the file)
submitted_at       ISO-8601 timestamp (required)
age                exact age in years, or blank
sex                self-reported sex answer (free vocabulary), or blank
skin_type          Fitzpatrick answer (``FST1``..``FST6``, ``1``..``6``), or blank
race_ethnicity     multi-select, e.g. ``asian;white``
body_parts         multi-select, e.g. ``arm;hand``
symptoms           multi-select
textures           multi-select
duration           e.g. ``ONE_TO_FOUR_WEEKS``
related_category   e.g. ``RASH``
description        optional free text (never released unless configured and scrubbed)
image_1..image_3   file names relative to ``images/`` (at least one)
shot_type_1..3     ``CLOSE_UP``, ``AT_AN_ANGLE`` or ``AT_DISTANCE``, or blank
=================  ==========================================================

:func:`read_cases` never stops at a bad row: it returns the good cases and one
problem per bad row, so the batch goes on. :func:`resolve_image_path` refuses
paths that leave the input folder (``..``, absolute paths, symlinks out).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from deid.errors import InvalidCaseRow
from deid.types import Case, CaseImage, ShotType

REQUIRED_COLUMNS = ("contribution_id", "submitted_at", "image_1")
INPUT_COLUMNS = (
    "contribution_id",
    "submitted_at",
    "age",
    "sex",
    "skin_type",
    "race_ethnicity",
    "body_parts",
    "symptoms",
    "textures",
    "duration",
    "related_category",
    "description",
    "image_1",
    "shot_type_1",
    "image_2",
    "shot_type_2",
    "image_3",
    "shot_type_3",
)
"""Every column of the input ``cases.csv``, in the documented order (writers use it; readers go by name)."""
MAX_CELL_CHARS = 10_000
MAX_ID_CHARS = 200
IMAGES_FOLDER = "images"


class RowProblem(NamedTuple):
    """A row that could not be used: where, why, and what it named (so its images can be kept and held)."""

    where: str
    error: InvalidCaseRow
    contribution_id: str
    image_names: tuple[str, ...]
    row: int


def read_cases(path: str | Path) -> tuple[list[Case], list[RowProblem]]:
    """Read every usable row of a contributions CSV.

    Returns
    -------
    cases, problems
        The cases that parsed, in file order, and a :class:`RowProblem` for
        each row that did not (``where`` is ``"<file> row <n>"``).

    Raises
    ------
    InvalidCaseRow
        If the file itself cannot be read, is not UTF-8 CSV, or lacks a
        required column (no row could be trusted then).
    """
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise InvalidCaseRow(f"cannot read cases file: {error.strerror}", path=file) from error
    except UnicodeDecodeError as error:
        raise InvalidCaseRow("cases file is not UTF-8", path=file, hint="save it as UTF-8 CSV") from error
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [name.strip() for name in (reader.fieldnames or [])]
    except csv.Error as error:
        raise InvalidCaseRow(f"not a CSV file: {error}", path=file) from error
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise InvalidCaseRow(
            f"missing column(s): {', '.join(missing)}", path=file, hint=f"columns are {', '.join(INPUT_COLUMNS)}"
        )
    reader.fieldnames = header
    cases: list[Case] = []
    problems: list[RowProblem] = []
    seen: set[str] = set()
    row_number = 1
    try:
        for row_number, row in enumerate(reader, start=2):
            where = f"{file} row {row_number}"
            try:
                case = parse_case_row(row, where=where)
                if case.contribution_id in seen:
                    raise InvalidCaseRow(f"duplicate contribution_id {case.contribution_id!r}", path=where)
                seen.add(case.contribution_id)
                cases.append(case)
            except InvalidCaseRow as error:
                named = tuple(str(row.get(f"image_{i}") or "").strip() for i in (1, 2, 3))
                problems.append(
                    RowProblem(
                        where,
                        error,
                        str(row.get("contribution_id") or "").strip()[:MAX_ID_CHARS],
                        tuple(n for n in named if n),
                        row_number,
                    )
                )
    except csv.Error as error:
        where = f"{file} row {row_number + 1}"
        problems.append(
            RowProblem(where, InvalidCaseRow(f"CSV syntax error: {error}", path=where), "", (), row_number + 1)
        )
    return cases, problems


def read_cases_csv(path: str | Path) -> list[Case]:
    """Strict variant of :func:`read_cases`: every row must parse.

    Raises
    ------
    InvalidCaseRow
        On the first unusable row, naming the file and the row.
    """
    cases, problems = read_cases(path)
    if problems:
        raise problems[0].error
    return cases


def parse_case_row(row: Mapping[str, str | None], *, where: str) -> Case:
    """Turn one CSV row into a :class:`Case`.

    Raises
    ------
    InvalidCaseRow
        On a missing id or timestamp, a non-integer or impossible age, an
        unknown shot type, an over-long cell, or a row with no image.
    """
    cells = {key: (value or "").strip() for key, value in row.items() if key is not None}
    if None in row:
        raise InvalidCaseRow("row has more cells than the header", path=where)
    for key, value in cells.items():
        if len(value) > MAX_CELL_CHARS:
            raise InvalidCaseRow(f"cell {key} is {len(value)} characters long (limit {MAX_CELL_CHARS})", path=where)
    contribution_id = cells.get("contribution_id", "")
    if not contribution_id or len(contribution_id) > MAX_ID_CHARS:
        raise InvalidCaseRow(f"contribution_id must be 1..{MAX_ID_CHARS} characters", path=where)
    if not cells.get("submitted_at"):
        raise InvalidCaseRow("submitted_at is empty", path=where)
    images: list[CaseImage] = []
    for index in (1, 2, 3):
        name = cells.get(f"image_{index}", "")
        shot = cells.get(f"shot_type_{index}", "")
        if not name:
            continue
        try:
            shot_type = ShotType(shot.upper()) if shot else None
        except ValueError:
            valid = ", ".join(s.value for s in ShotType)
            raise InvalidCaseRow(f"shot_type_{index} {shot!r} is not one of {valid}", path=where) from None
        images.append(CaseImage(name, shot_type))
    if not images:
        raise InvalidCaseRow("row names no image", path=where)
    return Case(
        contribution_id=contribution_id,
        submitted_at=cells["submitted_at"],
        age=_age(cells.get("age", ""), where),
        sex=cells.get("sex") or None,
        skin_type=cells.get("skin_type") or None,
        race_ethnicity=_multi(cells.get("race_ethnicity", "")),
        body_parts=_multi(cells.get("body_parts", "")),
        symptoms=_multi(cells.get("symptoms", "")),
        textures=_multi(cells.get("textures", "")),
        duration=cells.get("duration") or None,
        related_category=cells.get("related_category") or None,
        description=cells.get("description", ""),
        images=tuple(images),
    )


def _age(text: str, where: str) -> int | None:
    if not text:
        return None
    try:
        age = int(float(text)) if text.replace(".", "", 1).isdigit() else int(text)
    except ValueError:
        raise InvalidCaseRow(f"age {text!r} is not a whole number", path=where) from None
    if not 0 <= age <= 130:
        raise InvalidCaseRow(f"age {age} is outside 0..130", path=where)
    return age


def _multi(text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in text.split(";") if part.strip())


def resolve_image_path(input_dir: str | Path, name: str) -> Path:
    """The file an image cell names, inside ``<input_dir>/images``.

    Raises
    ------
    InvalidCaseRow
        If the name is absolute, climbs out with ``..``, or resolves (through
        a symlink) outside the images folder, or the file does not exist.
    """
    root = (Path(input_dir) / IMAGES_FOLDER).resolve()
    candidate = Path(name)
    if candidate.is_absolute() or name.startswith(("/", "\\")) or ".." in candidate.parts or "\x00" in name:
        raise InvalidCaseRow(f"image path {name!r} leaves the images folder", path=Path(input_dir) / "cases.csv")
    cases_file = Path(input_dir) / "cases.csv"
    try:
        resolved = (root / candidate).resolve()
        if not resolved.is_relative_to(root):
            raise InvalidCaseRow(f"image path {name!r} resolves outside the images folder", path=cases_file)
        if not resolved.is_file():
            raise InvalidCaseRow(f"image {name!r} not found in {root}", path=cases_file)
    except OSError as error:  # a name too long for the file system, a symlink loop
        raise InvalidCaseRow(f"image path {name[:80]!r} cannot be opened: {error.strerror}", path=cases_file) from error
    return resolved
