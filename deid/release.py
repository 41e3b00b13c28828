"""The release gate: build a SCIN-layout release in a temporary folder, check it all, publish or refuse.

:func:`build_release` assembles the release from the ledger and ``staged/``
(:func:`assemble_release`), writes its manifest, runs every check in
:data:`CHECKS` on what it built (:func:`run_checks`) and renames the folder
into place only when all pass; otherwise it raises
:class:`~deid.errors.ReleaseBlocked` with every failed item and writes the
refusal under ``<workspace>/release-refusals/``. A check that raises fails.

Layout (SCIN's bucket layout, so SCIN's own loading code works)::

    dataset/scin_cases.csv      SCIN's columns and order, then deid's declared extra columns
    dataset/scin_labels.csv     case_id and SCIN's label columns (empty until graders fill them)
    dataset/images/<int64>.png  random signed 64-bit names, metadata-free
    schema.json                 deid/data/scin_schema.json (columns, vocabularies, quasi-identifiers)
    manifest.json               sha256 + size of every file, versions, config digest, checks, approver
    DATA_CARD.html, DATA_CARD.md

Every published release is kept privately under ``<workspace>/releases/<version>/``:
its case rows count for k-anonymity in every later batch and release (they
are public), its images are recorded in the ledger table ``release_images``
(so a contribution is published once and its ``case_id`` stays the one the
ledger gave it), and their fingerprints go into ``<workspace>/release-index``
so a later copy of one is caught.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from deid.anonymity_check import release_classes
from deid.config import Config
from deid.csv_safety import safe_csv_cell
from deid.datacard import CARD_FILES, CARD_MD, build_card, card_numbers_from_release, read_card_numbers, write_card
from deid.demographics import AnonymityReport, build_release_table, read_release_csv, year_of
from deid.detect import Detector, detect_regions, detectors_for, make_detection_copy
from deid.errors import InputError, ReleaseBlocked
from deid.ids import new_release_image_id
from deid.io import load_image, write_atomic
from deid.ledger import Ledger, transaction
from deid.match import (
    DiskMatchIndex,
    Fingerprints,
    MatchIndex,
    Verdict,
    cluster_duplicates,
    compute_fingerprints,
    file_reference_loader,
    match_image,
)
from deid.scin import ScinSchema, load_schema
from deid.staging import hold_candidate
from deid.types import Case, Region, RGBImage, Status
from deid.verify_bytes import verify_clean
from deid.workspace import Workspace

logger = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"


def write_manifest(folder: Path) -> Path:
    """Write ``manifest.json`` with the SHA-256 and size of every file under ``folder``, sorted by path.

    Raises
    ------
    DeidError
        If the manifest cannot be written.
    """
    files = {}
    for path in sorted(
        p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_FILE and not p.name.endswith(".partial")
    ):
        data = path.read_bytes()
        files[path.relative_to(folder).as_posix()] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest = folder / MANIFEST_FILE
    write_atomic(manifest, (json.dumps({"files": files}, indent=2, sort_keys=True) + "\n").encode())
    return manifest


def earlier_release_rows(workspace: Workspace) -> list[dict[str, str]]:
    """Rows of every release kept in ``<workspace>/releases/*/dataset/scin_cases.csv`` (public: they count for k).

    Raises
    ------
    InputError
        If a kept release table cannot be read.
    """
    rows: list[dict[str, str]] = []
    for path in sorted(workspace.releases.glob(f"*/{load_schema().cases_file}")):
        rows.extend(read_release_csv(path))
    return rows


def open_release_index(workspace: Workspace) -> MatchIndex | None:
    """A read-only view of the fingerprints of every released image, or ``None`` before the first release."""
    if not (workspace.release_index / "meta.json").exists():
        return None
    return open_index(str(workspace.release_index))


@lru_cache(maxsize=4)
def open_index(directory: str) -> MatchIndex:
    """A read-only view of a persistent match index, opened once per process."""
    return DiskMatchIndex(directory, readonly=True)


# --------------------------------------------------------------------------------------------
# The release gate
# --------------------------------------------------------------------------------------------

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
SCHEMA_NAME = "schema.json"
REFUSALS_DIR = "release-refusals"
_ALNUM_BOUNDARY = "(?<![A-Za-z0-9]){}(?![A-Za-z0-9])"

_release_metadata = sa.MetaData()
release_images = sa.Table(
    "release_images",
    _release_metadata,
    sa.Column("release_image_id", sa.BigInteger, primary_key=True),
    sa.Column("version", sa.String(64), nullable=False, index=True),
    sa.Column("image_id", sa.String(64), nullable=False, index=True),
    sa.Column("contribution_id", sa.String(200), nullable=False, index=True),
    sa.Column("case_id", sa.BigInteger, nullable=False),
    sa.Column("path", sa.String(200), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One gate check: passed or not, with every item involved.

    ``notes`` are reported but do not refuse (small cells on the marginals).
    """

    name: str
    passed: bool
    summary: str
    items: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """JSON form for the manifest and the refusal file."""
        return {
            "name": self.name,
            "passed": self.passed,
            "summary": self.summary,
            "items": list(self.items),
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class ReleasedImage:
    """One image placed in the release, and where it came from (private)."""

    release_image_id: int
    path: str
    image_id: str
    contribution_id: str
    case_id: int
    shot_type: str
    source: Path


@dataclass(frozen=True, slots=True)
class Funnel:
    """Images from the batch to the release: in = pending + excluded + suppressed + withheld + released."""

    contributions_in: int
    images_in: int
    pending: Mapping[str, int]
    excluded: Mapping[str, int]
    suppressed: int
    withheld: Mapping[str, int]
    released: int
    cases_released: int
    cases_pending: int
    cases_suppressed: int
    rows_rejected: int
    already_released: int

    def to_json(self) -> dict[str, object]:
        """JSON form for the card and the manifest."""
        return {
            "contributions_in": self.contributions_in,
            "images_in": self.images_in,
            "pending": dict(self.pending),
            "excluded": dict(self.excluded),
            "suppressed": self.suppressed,
            "withheld": dict(self.withheld),
            "released": self.released,
            "cases_released": self.cases_released,
            "cases_pending": self.cases_pending,
            "cases_suppressed": self.cases_suppressed,
            "rows_rejected": self.rows_rejected,
            "already_released": self.already_released,
        }


@dataclass(frozen=True, slots=True)
class ReleasePlan:
    """What the gate assembled: the release rows, the images and what the ledger knows about them."""

    version: str
    folder: Path
    leave_pending_out: bool
    rows: tuple[Mapping[str, str], ...]
    earlier_rows: tuple[Mapping[str, str], ...]
    images: tuple[ReleasedImage, ...]
    pending: tuple[str, ...]
    funnel: Funnel
    report: AnonymityReport
    secrets: tuple[tuple[str, str], ...]
    years: tuple[int, int] | None
    staged_problems: tuple[str, ...]
    earlier_versions: tuple[str, ...]
    workspace: Workspace
    stored_fingerprints: Mapping[str, dict[str, Any]]
    reviewed: frozenset[str]
    verified_public: Mapping[str, str]
    staged_sha256: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ReleaseReport:
    """A published release: where, which version, its checks and funnel."""

    out: Path
    version: str
    checks: tuple[CheckResult, ...]
    funnel: Funnel
    cases: int
    images: int
    approver: str | None
    card_markdown: str


def releases_dir(workspace: Workspace) -> Path:
    """Where published releases are kept privately (``<workspace>/releases``)."""
    return workspace.releases


def published_versions(workspace: Workspace) -> list[str]:
    """Versions already published from this workspace, oldest first."""
    found = [p.name for p in releases_dir(workspace).glob("*") if p.is_dir() and (p / MANIFEST_FILE).exists()]
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")) if SEMVER.match(v) else (0, 0, 0))


def _released_contributions(ledger: Ledger, versions: Sequence[str]) -> set[str]:
    """Contributions published in one of ``versions`` (the releases still kept in the workspace)."""
    _release_metadata.create_all(ledger.engine)
    query = sa.select(release_images.c.contribution_id).where(release_images.c.version.in_(list(versions)))
    with ledger.engine.connect() as connection:
        return {row.contribution_id for row in connection.execute(query)}


def _fingerprint_key(config: Config) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(config), sort_keys=True, default=str).encode()).hexdigest()


def _exclusion_kind(reasons: Sequence[str]) -> str:
    text = " ".join(reasons).lower()
    if "public_copy" in text:
        return "public_copy"
    if "duplicate" in text:
        return "duplicate"
    if any(word in text for word in ("unreadable", "unsupported", "truncated", "cannot", "polyglot")):
        return "unreadable"
    return "policy"


def _reason_code(reason: str) -> str:
    return reason.split(":", 1)[0].strip()[:60] or "unspecified"


def assemble_release(
    workspace: Workspace, ledger: Ledger, config: Config, *, into: Path, version: str, leave_pending_out: bool
) -> ReleasePlan:
    """Write a candidate release into the empty folder ``into`` (SCIN layout, card, no manifest yet).

    Every contribution the ledger knows and no earlier release published is
    considered; its images must be ``ok`` with their staged file, else the
    case is pending (left out with ``leave_pending_out``, else the gate
    refuses). The case table is rebuilt from the stored answers with
    ``release`` = ``version`` and new random image names, counting every
    earlier release for small cells and k.

    Raises
    ------
    DeidError
        If the ledger or workspace cannot be read or a file cannot be written.
    """
    schema = load_schema()
    released_before = _released_contributions(ledger, published_versions(workspace))
    hold_new_findings(workspace, ledger, config, released_before)
    cases = ledger.cases()
    statuses = ledger.contribution_statuses()
    case_ids = ledger.case_ids()
    secrets_: set[tuple[str, str]] = set()
    pending_items: list[str] = []
    pending: Counter[str] = Counter()
    excluded: Counter[str] = Counter()
    withheld: Counter[str] = Counter()
    staged_problems: list[str] = []
    candidates: list[Case] = []
    image_paths: dict[str, list[tuple[str, str]]] = {}
    chosen: dict[str, list[ReleasedImage]] = {}
    images_in = already = 0
    pending_cases = 0
    batch_suppressed = 0
    known_staged: set[str] = set()
    for contribution_id in statuses:
        secrets_.add(("contribution id", contribution_id))
    for record in ledger.images():
        secrets_.update(
            {
                ("original file name", record.original_name),
                ("original sha256", record.sha256),
                ("image id", record.image_id),
            }
        )
        stem = Path(record.original_name).stem
        if len(stem) >= 4:
            secrets_.add(("original file name", stem))
        if record.status is Status.OK and record.staged_name:
            known_staged.add(record.staged_name)
    with ledger.engine.connect() as connection:
        batches = {row[0] for row in connection.execute(sa.text("SELECT DISTINCT batch FROM contributions"))}
    secrets_.update(("batch name", batch) for batch in batches if batch)
    for path in sorted(workspace.staged_images.glob("*")) if workspace.staged_images.exists() else []:
        if path.is_file() and not path.name.startswith(".") and path.name not in known_staged:
            staged_problems.append(f"staged/images/{path.name}: a file the ledger does not name as releasable")
    years: list[int] = []
    for contribution_id, case in cases.items():
        secrets_.add(("submission timestamp", case.submitted_at))
        if len(case.submitted_at) >= 16:
            secrets_.add(("submission timestamp", case.submitted_at[:16]))
        records = ledger.images(contribution_id=contribution_id)
        if contribution_id in released_before:
            already += len(records)
            continue
        images_in += len(records)
        status, reasons = statuses.get(contribution_id, (Status.OK, ()))
        problems: list[tuple[str, str]] = []
        if status is Status.HELD:
            problems.extend((_reason_code(reason), reason) for reason in reasons or ("held",))
        placed: list[ReleasedImage] = []
        for record in records:
            if record.status is Status.EXCLUDED:
                excluded[_exclusion_kind(record.reasons)] += 1
                continue
            if record.status is Status.HELD or not record.staged_name:
                first = record.reasons[0] if record.reasons else str(record.status)
                problems.append((_reason_code(first), f"image {record.image_id} {record.status}: {first[:120]}"))
                continue
            rid = new_release_image_id()
            placed.append(
                ReleasedImage(
                    rid,
                    f"{schema.images_dir}/{rid}.png",
                    record.image_id,
                    contribution_id,
                    case_ids.get(contribution_id, 0),
                    record.shot_type or "",
                    workspace.staged_images / record.staged_name,
                )
            )
        live = sum(1 for r in records if r.status is not Status.EXCLUDED)
        if problems and all(code == "case suppressed" for code, _ in problems):
            batch_suppressed += live  # k-anonymity withheld it at batch time: not waiting for a person
            continue
        if problems:
            pending_cases += 1
            pending[problems[0][0]] += live
            pending_items.append(f"contribution {contribution_id}: " + "; ".join(text for _, text in problems)[:300])
            continue
        if not placed:
            continue
        candidates.append(case)
        chosen[contribution_id] = placed
        image_paths[contribution_id] = [(image.path, image.shot_type) for image in placed]
        year = year_of(case.submitted_at)
        if year:
            years.append(int(year))
    earlier = earlier_release_rows(workspace)
    table = build_release_table(
        candidates,
        config.demographics,
        case_ids=case_ids,
        image_paths=image_paths,
        release=version,
        earlier_rows=earlier,
    )
    released_ids = {row["case_id"] for row in table.rows}
    images = tuple(image for cid in chosen for image in chosen[cid] if str(image.case_id) in released_ids)
    suppressed = batch_suppressed + sum(len(chosen[cid]) for cid in table.suppressed)
    for cid, reason in table.held.items():
        withheld[_reason_code(reason)] += len(chosen.get(cid, ()))
        pending_items.append(f"contribution {cid}: case held: {reason[:200]}")
    funnel = Funnel(
        contributions_in=len([c for c in cases if c not in released_before]),
        images_in=images_in,
        pending={k: v for k, v in pending.items() if v},
        excluded=dict(excluded),
        suppressed=suppressed,
        withheld=dict(withheld),
        released=len(images),
        cases_released=len(table.rows),
        cases_pending=pending_cases + len(table.held),
        cases_suppressed=len(table.suppressed),
        rows_rejected=len([cid for cid in statuses if cid not in cases]),
        already_released=already,
    )
    plan = ReleasePlan(
        version=version,
        folder=into,
        leave_pending_out=leave_pending_out,
        rows=tuple(table.rows),
        earlier_rows=tuple(earlier),
        images=images,
        pending=tuple(pending_items),
        funnel=funnel,
        report=table.report,
        secrets=tuple(sorted((kind, value) for kind, value in secrets_ if value)),
        years=(min(years), max(years)) if years else None,
        staged_problems=tuple(staged_problems),
        earlier_versions=tuple(published_versions(workspace)),
        workspace=workspace,
        stored_fingerprints=ledger.fingerprints_of([image.image_id for image in images]),
        reviewed=frozenset(
            image.image_id
            for image in images
            if (recorded := ledger.latest_decision(image.image_id)) is not None and recorded.actor.startswith("review:")
        ),
        verified_public=_verified_public(ledger, images),
        staged_sha256={
            image.image_id: details.staged_sha256 or ""
            for image in images
            if (details := ledger.image_details(image.image_id)) is not None
        },
    )
    _write_tree(plan, config, schema)
    return plan


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([safe_csv_cell(row.get(column, "")) for column in columns])
    write_atomic(path, buffer.getvalue().encode("utf-8"))


def _write_tree(plan: ReleasePlan, config: Config, schema: ScinSchema) -> None:
    folder = plan.folder
    (folder / schema.images_dir).mkdir(parents=True, exist_ok=True)
    columns = schema.case_columns(free_text=config.demographics.keep_free_text)
    _write_csv(folder / schema.cases_file, columns, plan.rows)
    _write_csv(folder / schema.labels_file, schema.label_columns, [{"case_id": row["case_id"]} for row in plan.rows])
    for image in plan.images:
        if image.source.is_file():  # a missing staged file leaves the row dangling: the files check refuses
            shutil.copyfile(image.source, folder / image.path)
    write_atomic(folder / SCHEMA_NAME, schema.text.encode("utf-8"))
    card = build_card(
        folder,
        plan.funnel.to_json(),
        plan.report,
        config.release,
        version=plan.version,
        quasi_identifiers=config.demographics.quasi_identifiers,
        k_target=config.demographics.k,
    )
    write_card(card, folder)


# --- the checks --------------------------------------------------------------------------------

Check = Callable[[ReleasePlan, Config], CheckResult]


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [{k: v or "" for k, v in row.items() if k is not None} for row in reader]
        return list(reader.fieldnames or []), rows


def check_curator_fields(plan: ReleasePlan, config: Config) -> CheckResult:
    """The curator filled in how the data was collected and what was consented to."""
    missing = [
        f"release.{name} is empty" for name in ("collection", "consent") if not getattr(config.release, name).strip()
    ]
    return CheckResult("curator_fields", not missing, "collection and consent are described", tuple(missing))


def check_schema(plan: ReleasePlan, config: Config) -> CheckResult:
    """Exact columns and order; every value declared; release == version (semver); one source; years in range."""
    schema = load_schema()
    items: list[str] = []
    if not SEMVER.match(plan.version):
        items.append(f"version {plan.version!r} is not semantic (X.Y.Z)")
    if plan.version in plan.earlier_versions:
        items.append(f"version {plan.version} is already published")
    expected = list(schema.case_columns(free_text=config.demographics.keep_free_text))
    header, rows = _read_rows(plan.folder / schema.cases_file)
    if header != expected:
        items.append(
            f"{schema.cases_file}: columns differ from {SCHEMA_NAME} "
            f"(first difference at {_first_diff(header, expected)})"
        )
    label_header, label_rows = _read_rows(plan.folder / schema.labels_file)
    if label_header != list(schema.label_columns):
        items.append(f"{schema.labels_file}: columns differ from {SCHEMA_NAME}")
    if sorted(r.get("case_id", "") for r in label_rows) != sorted(r.get("case_id", "") for r in rows):
        items.append(f"{schema.labels_file}: case ids differ from {schema.cases_file}")
    for number, row in enumerate(rows, start=2):
        for name in header:
            if name not in expected:
                continue
            value = row.get(name, "")
            spec = schema.column(name)
            problem = _value_problem(spec.kind, value, spec.values, spec.required, plan, config)
            if problem:
                items.append(f"{schema.cases_file} line {number} {name}: {problem}")
    return CheckResult("schema", not items, "columns, vocabularies, version, source and years", tuple(items[:200]))


def _first_diff(header: Sequence[str], expected: Sequence[str]) -> str:
    for index, (got, want) in enumerate(zip(header, expected, strict=False)):
        if got != want:
            return f"column {index + 1}: {got!r}, expected {want!r}"
    return f"{len(header)} columns, expected {len(expected)}"


def _value_problem(
    kind: str, value: str, values: Sequence[str], required: bool, plan: ReleasePlan, config: Config
) -> str:
    if not value:
        return "missing" if required else ""
    if kind == "int64":
        try:
            number = int(value)
        except ValueError:
            return f"{value[:40]!r} is not an integer"
        return "" if -(2**63) <= number < 2**63 and number != 0 else f"{value[:40]} is not a signed 64-bit id"
    if kind == "semver":
        return (
            "" if value == plan.version and SEMVER.match(value) else f"{value[:40]!r} is not the version {plan.version}"
        )
    if kind == "constant":
        return "" if value == config.demographics.source else f"{value[:40]!r} is not {config.demographics.source!r}"
    if kind == "year":
        if not value.isdigit():
            return f"{value[:40]!r} is not a year"
        low, high = plan.years or (0, 0)
        return "" if low <= int(value) <= high else f"year {value} is outside the batch's {low}-{high}"
    if kind == "image_path":
        return (
            ""
            if re.fullmatch(r"dataset/images/-?\d{1,19}\.png", value)
            else f"{value[:60]!r} is not dataset/images/<int64>.png"
        )
    if kind == "race_combination":
        parts = value.split(",")
        return "" if all(part in values for part in parts) else f"{value[:60]!r} has a value outside the vocabulary"
    if kind == "free_text":
        return ""
    if values and value not in values:
        return f"{value[:40]!r} is not in the vocabulary"
    return ""


def check_files(plan: ReleasePlan, config: Config) -> CheckResult:
    """Every referenced image exists, every image is referenced exactly once, no extra file, manifest matches."""
    schema = load_schema()
    folder = plan.folder
    items = list(plan.staged_problems)
    _, rows = _read_rows(folder / schema.cases_file)
    referenced: Counter[str] = Counter(
        row[f"image_{i}_path"] for row in rows for i in (1, 2, 3) if row.get(f"image_{i}_path")
    )
    for path, count in referenced.items():
        if count > 1:
            items.append(f"{path}: referenced {count} times")
        if not (folder / path).is_file():
            items.append(f"{path}: referenced but missing")
    allowed = {schema.cases_file, schema.labels_file, SCHEMA_NAME, MANIFEST_FILE, *CARD_FILES}
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = file.relative_to(folder).as_posix()
        if rel not in allowed and rel not in referenced:
            items.append(f"{rel}: a file no row references")
    manifest_path = folder / MANIFEST_FILE
    if manifest_path.exists():
        listed = json.loads(manifest_path.read_text("utf-8")).get("files", {})
        on_disk = {
            p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_FILE
        }
        for rel in sorted(on_disk ^ set(listed)):
            items.append(f"{rel}: {'not in the manifest' if rel in on_disk else 'in the manifest but absent'}")
        for rel in sorted(on_disk & set(listed)):
            data = (folder / rel).read_bytes()
            if hashlib.sha256(data).hexdigest() != listed[rel]["sha256"] or len(data) != listed[rel]["bytes"]:
                items.append(f"{rel}: sha256 or size differs from the manifest")
    else:
        items.append(f"{MANIFEST_FILE}: absent")
    return CheckResult("files", not items, "files and rows match both ways, manifest hashes match", tuple(items))


def check_duplicates(plan: ReleasePlan, config: Config) -> CheckResult:
    """No image twice, by bytes or by look, within the release or against earlier releases."""
    items: list[str] = []
    present = [image for image in plan.images if (plan.folder / image.path).is_file()]
    by_hash: dict[str, str] = {}
    earlier_hashes: dict[str, str] = {}
    for version in plan.earlier_versions:
        manifest = releases_dir(plan.workspace) / version / MANIFEST_FILE
        if manifest.is_file():
            for rel, entry in json.loads(manifest.read_text("utf-8")).get("files", {}).items():
                if rel.startswith("dataset/images/"):
                    earlier_hashes[entry["sha256"]] = f"{version}/{rel}"
    fingerprints: dict[str, Fingerprints] = {}
    for image in present:
        data = (plan.folder / image.path).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest in by_hash:
            items.append(f"{image.path}: same bytes as {by_hash[digest]}")
        by_hash.setdefault(digest, image.path)
        if digest in earlier_hashes:
            items.append(f"{image.path}: same bytes as {earlier_hashes[digest]} of an earlier release")
        pixels = load_image(plan.folder / image.path, config.input, data=data).pixels
        copy, _ = make_detection_copy(pixels, max_side_px=config.detection.max_side_px)
        fingerprints[image.path] = compute_fingerprints(copy, config.match)
    for cluster in cluster_duplicates(fingerprints, config.match):
        for path in cluster.excluded:
            items.append(f"{path}: near-identical to {cluster.kept}")
    index_dir = plan.workspace.release_index
    if (index_dir / "meta.json").exists():
        index = DiskMatchIndex(index_dir, readonly=True)
        for image in present:
            stored = plan.stored_fingerprints.get(image.image_id)
            for candidate in (fingerprints[image.path], Fingerprints.from_json(stored) if stored else None):
                if candidate is None:
                    continue
                kept = tuple(f"release:{version}/" for version in plan.earlier_versions)
                hits = [
                    hit
                    for hit in index.query(candidate, max_distance_bits=config.match.max_distance_bits)
                    if hit.reference.startswith(kept)
                ]
                if hits:
                    items.append(f"{image.path}: near-identical to {hits[0].reference} of an earlier release")
                    break
        index.close()
    return CheckResult(
        "duplicates",
        not items,
        "no exact or perceptual duplicate, here or in earlier releases",
        tuple(dict.fromkeys(items)),
    )


def _verified_public(ledger: Ledger, images: Sequence[ReleasedImage]) -> dict[str, str]:
    found: dict[str, str] = {}
    for image in images:
        for stored in ledger.image_details(image.image_id).matches:
            if stored.match.verified and stored.verdict == Verdict.PUBLIC_COPY:
                found[image.image_id] = f"verified public copy ({stored.match.method} {stored.match.distance:g})"
    return found


def check_pixels(plan: ReleasePlan, config: Config) -> CheckResult:
    """Byte verifier on every file, detectors again on the final pixels, no public copy, nothing pending."""
    items: list[str] = []
    notes: list[str] = []
    if plan.pending and not plan.leave_pending_out:
        items.extend(f"pending review: {item}" for item in plan.pending)
    elif plan.pending:
        notes.append(f"{len(plan.pending)} pending item(s) left out (--leave-pending-out)")
    public = (
        DiskMatchIndex(Path(config.match.index_dir), readonly=True)
        if config.match.index_dir and (Path(config.match.index_dir) / "meta.json").exists()
        else None
    )
    for image in plan.images:
        path = plan.folder / image.path
        if not path.is_file():
            continue  # the files check reports it
        data = path.read_bytes()
        if (
            plan.staged_sha256.get(image.image_id)
            and hashlib.sha256(data).hexdigest() != plan.staged_sha256[image.image_id]
        ):
            items.append(f"{image.path}: bytes differ from what the pipeline staged and verified")
        verdict = verify_clean(data, path=image.path)
        if not verdict.ok:
            items.append(f"{image.path}: byte verifier: {'; '.join(verdict.problems)[:200]}")
            continue
        if image.image_id in plan.verified_public:
            items.append(f"{image.path}: {plan.verified_public[image.image_id]}")
        for region in _unredacted_regions(data, config):
            line = f"{image.path}: {region.kind} {region.score:.2f} at {list(region.box.to_xywh())} left unredacted"
            if image.image_id in plan.reviewed:
                notes.append(line + " (a reviewer released it)")
            else:
                items.append(line)
        if public is not None:
            pixels = load_image(path, config.input, data=data).pixels
            copy, _ = make_detection_copy(pixels, max_side_px=config.detection.max_side_px)
            matched = match_image(copy, public, config.match, load_reference=file_reference_loader(config.input))
            if matched.verdict is Verdict.PUBLIC_COPY:
                items.append(f"{image.path}: matches a public image ({'; '.join(matched.reasons)[:120]})")
    if public is not None:
        public.close()
    return CheckResult(
        "pixels",
        not items,
        "clean bytes, nothing identifying left, no public copy, nothing pending",
        tuple(items),
        tuple(notes),
    )


def _is_filled(pixels: RGBImage, region: Region, fill: tuple[int, ...]) -> bool:
    """True when most of the region is the redaction fill (a detector firing on a filled box)."""
    box = region.box.clip(pixels.shape)
    patch = pixels[box.top : box.bottom, box.left : box.right]
    if patch.size == 0:
        return True
    return bool((patch == np.array(fill[:3], dtype=np.uint8)).all(axis=-1).mean() > 0.5)


_FOUND_CACHE: dict[tuple[str, str], tuple[Region, ...]] = {}


def _unredacted_regions(data: bytes, config: Config) -> tuple[Region, ...]:
    """Regions of an enabled kind at or above their rule's ``min_score`` that are not filled, in a file's pixels.

    Cached per (file sha256, detection settings): the same bytes always give the same answer, so the
    gate's pre-pass and its check share one detector run.
    """
    key = (hashlib.sha256(data).hexdigest(), repr(config.detection) + repr(config.policy))
    if key not in _FOUND_CACHE:
        pixels = load_image("<release candidate>", config.input, data=data).pixels
        copy, _ = make_detection_copy(pixels, max_side_px=config.detection.max_side_px)
        detectors = _detectors(config)
        enabled = {kind for detector in detectors for kind in detector.kinds}
        fill = tuple(config.policy.fill_rgb)
        found = detect_regions(pixels, detectors, max_side_px=config.detection.max_side_px, detection_copy=copy)
        _FOUND_CACHE[key] = tuple(
            region
            for region in found
            if region.kind in enabled
            and region.score >= config.policy.rule_for(region.kind).min_score
            and not _is_filled(pixels, region, fill)
        )
    return _FOUND_CACHE[key]


def hold_new_findings(workspace: Workspace, ledger: Ledger, config: Config, skip: set[str]) -> list[str]:
    """Hold, for review, staged candidates in which the detectors now find something the policy did not handle.

    A crop can change what a detector sees (a body part fills more of the
    frame). Only candidates whose bytes are still the ones the pipeline staged
    are held here; anything else is left to the checks, which refuse it.
    Images a reviewer decided on are left alone. Returns the image ids held.

    Raises
    ------
    DeidError
        If the ledger or a staged file cannot be read or moved.
    """
    held: list[str] = []
    for record in ledger.images(status=Status.OK):
        if record.contribution_id in skip or not record.staged_name:
            continue
        path = workspace.staged_images / record.staged_name
        details = ledger.image_details(record.image_id)
        recorded = ledger.latest_decision(record.image_id)
        if not path.is_file() or (recorded is not None and recorded.actor.startswith("review:")):
            continue
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != details.staged_sha256:
            continue
        found = _unredacted_regions(data, config)
        if found:
            listed = ", ".join(f"{region.kind} {region.score:.2f}" for region in found)
            hold_candidate(workspace, record.staged_name)
            ledger.set_image_status(
                record.image_id, Status.HELD, [f"gate_found: {listed} on the final pixels"], actor="release"
            )
            held.append(record.image_id)
    return held


def _detectors(config: Config) -> tuple[Detector, ...]:
    return tuple(detectors_for(config))


def check_k_anonymity(plan: ReleasePlan, config: Config) -> CheckResult:
    """Every class over this and every earlier release has k rows; small marginal cells are reported."""
    schema = load_schema()
    _, rows = _read_rows(plan.folder / schema.cases_file)
    everything = [*plan.earlier_rows, *rows]
    k = config.demographics.k
    classes = release_classes(everything, config.demographics.quasi_identifiers)
    new_keys = set(release_classes(rows, config.demographics.quasi_identifiers))
    items = [
        f"class {'|'.join(key)[:160]} has {count} row(s) < k={k}"
        + ("" if key in new_keys else " (earlier releases only)")
        for key, count in classes.items()
        if count < k
    ]
    notes: list[str] = []
    limit = config.release.max_small_cell
    for spec in (*schema.cases_columns, *schema.extra_columns):
        if not spec.quasi_identifier:
            continue
        for value, count in Counter(row.get(spec.name, "") for row in everything).items():
            if value and count < limit:
                notes.append(f"small cell: {spec.name}={value} has {count} row(s)")
    smallest = min(classes.values()) if classes else 0
    return CheckResult(
        "k_anonymity",
        not items,
        f"k={k} over {len(everything)} row(s); smallest class {smallest}",
        tuple(items),
        tuple(notes),
    )


def check_unlinkability(plan: ReleasePlan, config: Config) -> CheckResult:
    """No contribution id, original name, batch name, original hash or timestamp anywhere in the release."""
    texts: list[tuple[str, str]] = []
    for file in sorted(p for p in plan.folder.rglob("*") if p.is_file()):
        rel = file.relative_to(plan.folder).as_posix()
        texts.append((f"file name {rel}", rel))
        data = file.read_bytes()
        if file.suffix == ".png":
            texts.append((rel, _png_side_chunks(data)))
        else:
            text = data.decode("utf-8", errors="replace")
            texts.append((rel, re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)))
    items: list[str] = []
    for kind, needle in plan.secrets:
        pattern = re.compile(_ALNUM_BOUNDARY.format(re.escape(needle)))
        for where, text in texts:
            if needle in text and pattern.search(text):
                items.append(f"{where}: carries a {kind} the ledger knows")
    return CheckResult(
        "unlinkability", not items, f"{len(plan.secrets)} private string(s) searched", tuple(dict.fromkeys(items))
    )


def _png_side_chunks(data: bytes) -> str:
    """Every PNG chunk but the pixel data, as text (names and contents)."""
    parts: list[str] = []
    position = 8
    while position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        if kind != b"IDAT":
            parts.append(data[position + 4 : position + 8 + length].decode("latin-1"))
        position += 12 + length
    parts.append(data[position:].decode("latin-1"))
    return "\n".join(parts)


def check_card(plan: ReleasePlan, config: Config) -> CheckResult:
    """The card's numbers equal the ones recomputed from the release."""
    schema = load_schema()
    items: list[str] = []
    _, rows = _read_rows(plan.folder / schema.cases_file)
    recomputed = card_numbers_from_release(plan.folder)
    published = read_card_numbers(plan.folder)
    for key, value in recomputed.items():
        if published.get(key) != value:
            items.append(f"card {key}: {published.get(key)!r}, release says {value!r}")
    funnel = published.get("funnel", {})
    if isinstance(funnel, dict) and funnel.get("released") != recomputed.get("images"):
        items.append(f"card funnel released {funnel.get('released')!r} != {recomputed.get('images')} images")
    markdown = (plan.folder / CARD_MD).read_text("utf-8") if (plan.folder / CARD_MD).exists() else ""
    if f"{len(rows)} cases" not in markdown:
        items.append(f"{CARD_MD} does not state {len(rows)} cases")
    return CheckResult("card", not items, "the card's numbers are the release's", tuple(items))


CHECKS: tuple[Check, ...] = (
    check_curator_fields,
    check_schema,
    check_files,
    check_duplicates,
    check_pixels,
    check_k_anonymity,
    check_unlinkability,
    check_card,
)


def run_checks(plan: ReleasePlan, config: Config, checks: Sequence[Check] = CHECKS) -> list[CheckResult]:
    """Run every check on the assembled release; a check that raises is a failed check naming the error."""
    results: list[CheckResult] = []
    for check in checks:
        name = check.__name__.removeprefix("check_")
        try:
            results.append(check(plan, config))
        except Exception as error:  # fail closed: a check that cannot run refuses the release
            logger.exception("release check %s failed to run", name)
            results.append(
                CheckResult(name, False, "the check could not run", (f"{type(error).__name__}: {error}"[:300],))
            )
    return results


def config_digest(config: Config) -> str:
    """SHA-256 of the effective configuration (every setting, as loaded)."""
    return _fingerprint_key(config)


def _write_full_manifest(
    plan: ReleasePlan, config: Config, results: Sequence[CheckResult] | None, approver: str | None
) -> None:
    folder = plan.folder
    write_manifest(folder)
    path = folder / MANIFEST_FILE
    data = json.loads(path.read_text("utf-8"))
    data.update(
        {
            "version": plan.version,
            "deid_version": _deid_version(),
            "schema_version": load_schema().version,
            "config_digest": config_digest(config),
            "detectors": [f"{d.name}@{d.version}" for d in _detectors(config)],
            "funnel": plan.funnel.to_json(),
            "approver": approver,
            "checks": [r.to_json() for r in results] if results is not None else [],
        }
    )
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def _deid_version() -> str:
    from deid import __version__

    return __version__


def write_refusal(workspace: Workspace, version: str, results: Sequence[CheckResult]) -> tuple[Path, Path]:
    """Write a refusal as ``<workspace>/release-refusals/<version>.json`` and ``.md``; return both paths.

    Raises
    ------
    DeidError
        If the files cannot be written.
    """
    folder = workspace.root / REFUSALS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", version)[:64] or "unnamed"
    failed = [r for r in results if not r.passed]
    as_json = folder / f"{safe}.json"
    write_atomic(
        as_json,
        (
            json.dumps({"version": version, "refused": True, "checks": [r.to_json() for r in results]}, indent=2) + "\n"
        ).encode(),
    )
    lines = [f"# Release {version} refused", "", f"{len(failed)} check(s) failed.", ""]
    for result in failed:
        lines += [f"## {result.name}: {result.summary}", "", *(f"- {item}" for item in result.items), ""]
    as_md = folder / f"{safe}.md"
    write_atomic(as_md, "\n".join(lines).encode())
    return as_json, as_md


def refusal_lines(results: Sequence[CheckResult]) -> list[str]:
    """One line per failed item: ``<check>: <item>``."""
    return [f"{r.name}: {item}" for r in results if not r.passed for item in (r.items or (r.summary,))]


def build_release(
    workspace: Workspace,
    ledger: Ledger,
    config: Config,
    *,
    out: str | Path,
    version: str,
    leave_pending_out: bool,
    approver: str | None = None,
) -> ReleaseReport:
    """Build a release in a temporary folder beside ``out``, check everything, and publish or refuse.

    Parameters
    ----------
    workspace, ledger, config
        The private workspace, its ledger and the configuration the batch ran with.
    out
        The release folder to create (must not exist).
    version
        The release version (``X.Y.Z``), written in every row's ``release``.
    leave_pending_out
        Leave contributions waiting for review out (counted in the card)
        instead of refusing.
    approver
        The named person who approved, recorded in the manifest.

    Returns
    -------
    ReleaseReport
        What was published.

    Raises
    ------
    ReleaseBlocked
        If any check failed or raised, or none ran; ``reasons`` lists every
        failed item, and the refusal is written under
        ``<workspace>/release-refusals/``. ``out`` is not created.
    InputError
        If ``out`` already exists.

    Examples
    --------
    >>> build_release(workspace, ledger, config, out="rel", version="1.0.0", leave_pending_out=True)  # doctest: +SKIP
    """
    target = Path(out)
    if target.exists():
        raise InputError("the release folder already exists", path=target, hint="choose a new --out")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        plan = assemble_release(
            workspace, ledger, config, into=temporary, version=version, leave_pending_out=leave_pending_out
        )
        _write_full_manifest(plan, config, None, approver)
        results = run_checks(plan, config)
        if not results or not all(r.passed for r in results):
            if not results:
                results = [CheckResult("gate", False, "no check ran", ("no check ran",))]
            write_refusal(workspace, version, results)
            raise ReleaseBlocked(refusal_lines(results), path=target)
        _write_full_manifest(plan, config, results, approver)
        temporary.rename(target)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    _keep_published(workspace, ledger, config, plan, target)
    logger.info("published release %s: %d case(s), %d image(s)", version, len(plan.rows), len(plan.images))
    return ReleaseReport(
        out=target,
        version=version,
        checks=tuple(results),
        funnel=plan.funnel,
        cases=len(plan.rows),
        images=len(plan.images),
        approver=approver,
        card_markdown=(target / CARD_MD).read_text("utf-8"),
    )


def _keep_published(workspace: Workspace, ledger: Ledger, config: Config, plan: ReleasePlan, target: Path) -> None:
    """Keep the release privately, record its images, and add their fingerprints to the release index."""
    private = releases_dir(workspace) / plan.version
    shutil.copytree(target, private)
    now = datetime.now(UTC)
    with transaction(ledger.engine, what="recording the release") as connection:
        for image in plan.images:
            connection.execute(
                release_images.insert().values(
                    release_image_id=image.release_image_id,
                    version=plan.version,
                    image_id=image.image_id,
                    contribution_id=image.contribution_id,
                    case_id=image.case_id,
                    path=image.path,
                    at=now,
                )
            )
    for contribution_id in {image.contribution_id for image in plan.images}:
        ledger.add_event(contribution_id, "released", actor="release", detail={"version": plan.version})
    with DiskMatchIndex(workspace.release_index) as index:
        for image in plan.images:
            stored = plan.stored_fingerprints.get(image.image_id)
            if stored:
                index.add(f"release:{plan.version}/{image.path}", Fingerprints.from_json(stored))
    open_index.cache_clear()
