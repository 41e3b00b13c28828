"""The batch pipeline as plain library calls: ingest, process each image, finish the batch.

``flows/deidentify.py`` wires these into Prefect tasks; tests call them
directly. The split keeps workers free of the ledger: :func:`process_image`
reads one original and writes one candidate file and returns an
:class:`ImageResult`; the flow process records it with
:func:`record_image_result`. That is what lets the same flow fan out on a
Dask cluster sharing only the workspace folder.

Per image: load safely -> detect on a downscaled copy -> apply the policy ->
render (fill, crop) -> encode fresh pixels with no metadata -> verify the
bytes -> write to ``staged/images`` (releasable), ``held/`` (a candidate for
review) or nowhere (excluded). Any error holds the image (fail closed).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from deid import demographics
from deid.cases import read_cases, resolve_image_path
from deid.config import Config, load_config
from deid.detect import Detector, build_detectors, detect_regions
from deid.errors import DeidError, InputError
from deid.io import load_image, read_bytes
from deid.ledger import Ledger, ledger_url
from deid.metadata import SUFFIXES, encode_clean
from deid.policy import apply_policy
from deid.redact import render_decision
from deid.types import Action, Case, Decision, Region, Status

logger = logging.getLogger(__name__)

CASES_FILE = "cases.csv"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True, slots=True)
class Workspace:
    """The private working folder of a run.

    ``originals/`` holds content-addressed copies of every input (never
    published), ``staged/`` the releasable candidates (``images/``,
    ``cases.csv``, ``manifest.json``), ``held/`` candidates waiting for a
    reviewer and ``previews/`` before/after pictures for reviewers.
    """

    root: Path

    @property
    def originals(self) -> Path:
        """Content-addressed originals."""
        return self.root / "originals"

    @property
    def staged(self) -> Path:
        """Releasable candidates."""
        return self.root / "staged"

    @property
    def staged_images(self) -> Path:
        """Releasable images."""
        return self.staged / "images"

    @property
    def held(self) -> Path:
        """Candidates held for review."""
        return self.root / "held"

    @property
    def previews(self) -> Path:
        """Before/after previews for reviewers."""
        return self.root / "previews"

    def create(self) -> Workspace:
        """Make every folder; return self."""
        for folder in (self.originals, self.staged_images, self.held, self.previews):
            folder.mkdir(parents=True, exist_ok=True)
        return self


@dataclass(frozen=True, slots=True)
class ImageTask:
    """One image to process: everything a worker needs, nothing from the ledger."""

    image_id: str
    contribution_id: str
    original_name: str
    original_path: str
    body_parts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImageResult:
    """What processing one image found, decided and wrote."""

    image_id: str
    status: Status
    reasons: tuple[str, ...]
    decision: Decision | None = None
    regions: tuple[Region, ...] = ()
    output_name: str | None = None
    output_sha256: str | None = None
    width: int | None = None
    height: int | None = None
    image_format: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What ingesting a batch registered."""

    batch: str
    tasks: tuple[ImageTask, ...]
    already_done: tuple[str, ...]
    problems: tuple[tuple[str, str], ...] = ()


@dataclass
class BatchSummary:
    """Counts and per-image lines for the end of a run."""

    batch: str
    workspace: str
    images_in: int = 0
    released: int = 0
    redacted: int = 0
    cropped: int = 0
    held: int = 0
    excluded: int = 0
    cases_staged: int = 0
    cases_held: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON form for ``deid run --json``."""
        return {
            "batch": self.batch,
            "workspace": self.workspace,
            "staged": str(Path(self.workspace) / "staged"),
            "counts": {
                "images_in": self.images_in,
                "released_as_staged": self.released,
                "redacted": self.redacted,
                "cropped": self.cropped,
                "held_for_review": self.held,
                "excluded": self.excluded,
                "cases_staged": self.cases_staged,
                "cases_held": self.cases_held,
            },
            "items": self.items,
            "problems": self.problems,
        }

    def to_text(self) -> str:
        """A short human summary."""
        lines = [
            f"deid batch {self.batch}",
            f"  images in:          {self.images_in}",
            f"  released (staged):  {self.released}  (of which redacted {self.redacted}, cropped {self.cropped})",
            f"  held for review:    {self.held}",
            f"  excluded:           {self.excluded}",
            f"  cases staged/held:  {self.cases_staged}/{self.cases_held}",
        ]
        for item in self.items:
            if item["status"] != Status.OK or item["action"] in (Action.REDACT, Action.CROP):
                why = "; ".join(item["reasons"][:3])
                lines.append(f"  - {item['original_name']}: {item['status']} {item['action'] or ''} ({why})")
        for problem in self.problems:
            lines.append(f"  ! {problem['where']}: {problem['problem']}")
        lines.append(f"staged output: {Path(self.workspace) / 'staged'}")
        return "\n".join(lines)


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def open_ledger(workspace: Workspace, config: Config) -> Ledger:
    """The ledger for a workspace: ``[ledger] url`` or SQLite in the workspace."""
    return Ledger(ledger_url(workspace.root, config.ledger.url))


def ingest_batch(input_dir: str | Path, workspace: Workspace, ledger: Ledger, config: Config) -> IngestResult:
    """Read ``cases.csv``, keep each original privately and register everything in the ledger.

    Each image's bytes are copied to ``originals/`` under their SHA-256 and
    registered under a new random id. An image the ledger has already
    finished (and whose output is still on disk) is not queued again, which
    makes a rerun a no-op.

    Raises
    ------
    InputError
        If ``cases.csv`` itself cannot be read; bad rows and missing or unsafe
        image paths do not raise: they are returned as ``problems`` and the
        contribution is held.
    """
    input_root = Path(input_dir)
    batch = input_root.resolve().name
    cases, row_problems = read_cases(input_root / CASES_FILE)
    problems: list[tuple[str, str]] = []
    for problem in row_problems:
        problems.append((problem.where, str(problem.error)))
        kept = _keep_named_originals(input_root, workspace, config, problem.image_names)
        ledger.register_rejected_row(
            f"{batch}/row-{problem.row}",
            batch=batch,
            reasons=[problem.error.reason],
            detail={"contribution_id": problem.contribution_id, "images": list(problem.image_names), "originals": kept},
        )
    tasks: list[ImageTask] = []
    done: list[str] = []
    for case in cases:
        ledger.register_contribution(case, batch=batch)
        for position, case_image in enumerate(case.images, start=1):
            where = f"{case.contribution_id} image {position} ({case_image.file})"
            try:
                source = resolve_image_path(input_root, case_image.file)
                data = read_bytes(source, config.input)
            except InputError as error:
                problems.append((where, str(error)))
                ledger.set_contribution_status(case.contribution_id, Status.HELD, [error.reason], actor="ingest")
                continue
            digest = sha256_hex(data)
            original = _keep_original(workspace, digest, source.suffix.lower(), data)
            record = ledger.register_image(
                contribution_id=case.contribution_id,
                position=position,
                original_name=case_image.file,
                shot_type=case_image.shot_type,
                sha256=digest,
            )
            if _is_finished(record.status, record.reasons, record.staged_name, workspace):
                done.append(record.image_id)
                continue
            tasks.append(ImageTask(record.image_id, case.contribution_id, case_image.file, str(original), tuple(sorted(case.body_parts))))
    logger.info("ingested batch %s: %d image(s) to process, %d already done, %d problem(s)", batch, len(tasks), len(done), len(problems))
    return IngestResult(batch, tuple(tasks), tuple(done), tuple(problems))


def _keep_named_originals(input_root: Path, workspace: Workspace, config: Config, names: Sequence[str]) -> list[str]:
    """Keep (privately) the images a rejected row names, where they can be read safely; return their digests."""
    kept: list[str] = []
    for name in names:
        try:
            source = resolve_image_path(input_root, name)
            data = read_bytes(source, config.input)
        except InputError:
            continue
        digest = sha256_hex(data)
        _keep_original(workspace, digest, source.suffix.lower(), data)
        kept.append(digest)
    return kept


def _keep_original(workspace: Workspace, digest: str, suffix: str, data: bytes) -> Path:
    folder = workspace.originals / digest[:2]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest}{suffix}"
    if not path.exists():
        _write_atomic(path, data)
    return path


def _is_finished(status: Status, reasons: Sequence[str], staged_name: str | None, workspace: Workspace) -> bool:
    if reasons == ("not processed yet",):
        return False
    if status is Status.OK:
        return staged_name is not None and (workspace.staged_images / staged_name).exists()
    if status is Status.HELD and staged_name is not None:
        return (workspace.held / staged_name).exists()
    return True


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)


@lru_cache(maxsize=4)
def _cached_detectors(config_source: tuple[str, ...]) -> tuple[Detector, ...]:
    config = load_config(config_source[-1] if len(config_source) > 1 else None)
    return tuple(build_detectors(config))


def detectors_for(config: Config) -> Sequence[Detector]:
    """The detectors for a configuration, built once per process (models are heavy)."""
    return _cached_detectors(config.source)


def process_image(
    task: ImageTask,
    config: Config,
    workspace: Workspace,
    *,
    detectors: Sequence[Detector] | None = None,
) -> ImageResult:
    """Load, detect, decide, render, encode and verify one image; write its candidate.

    Never raises for a bad image: any error becomes a held result naming the
    error, so the batch goes on and nothing unverified is staged.
    """
    started = time.perf_counter()
    try:
        result = _process(task, config, workspace, detectors if detectors is not None else detectors_for(config))
    except DeidError as error:
        logger.warning("held %s: %s", task.original_name, error)
        result = ImageResult(task.image_id, Status.HELD, (error.reason,))
    except Exception as error:  # fail closed: an unexpected fault holds this image, never releases it
        logger.exception("internal error on %s", task.original_name)
        result = ImageResult(task.image_id, Status.HELD, (f"internal_error: {error!r}",))
    seconds = time.perf_counter() - started
    logger.info("processed %s -> %s in %.2fs", task.original_name, result.status, seconds)
    return _with_seconds(result, seconds)


def _with_seconds(result: ImageResult, seconds: float) -> ImageResult:
    return ImageResult(**{**{f: getattr(result, f) for f in result.__dataclass_fields__}, "seconds": seconds})


def _process(task: ImageTask, config: Config, workspace: Workspace, detectors: Sequence[Detector]) -> ImageResult:
    loaded = load_image(Path(task.original_path), config.input)
    found = detect_regions(loaded.pixels, detectors, max_side_px=config.detection.max_side_px)
    decision = apply_policy(found, config.policy, body_parts=task.body_parts)
    reasons = (*loaded.notes, *decision.reasons)
    base = {"regions": tuple(found), "width": loaded.width, "height": loaded.height, "image_format": loaded.format}
    if decision.action is Action.EXCLUDE:
        return ImageResult(task.image_id, Status.EXCLUDED, reasons, decision, **base)  # type: ignore[arg-type]
    rendered = render_decision(loaded.pixels, decision, config.policy)
    data = encode_clean(rendered, config.output)
    name = f"{task.image_id}{SUFFIXES[config.output.format]}"
    status = Status.HELD if decision.action is Action.HOLD else Status.OK
    target = (workspace.held if status is Status.HELD else workspace.staged_images) / name
    _write_atomic(target, data)
    return ImageResult(task.image_id, status, reasons, decision, output_name=name, output_sha256=sha256_hex(data), **base)  # type: ignore[arg-type]


def record_image_result(ledger: Ledger, result: ImageResult) -> None:
    """Store a result in the ledger with its audit event."""
    ledger.record_result(
        result.image_id,
        status=result.status,
        reasons=result.reasons,
        actor="policy",
        decision=result.decision,
        found=result.regions,
        staged_name=result.output_name,
        staged_sha256=result.output_sha256,
        width=result.width,
        height=result.height,
        image_format=result.image_format,
    )


def finish_batch(input_dir: str | Path, workspace: Workspace, ledger: Ledger, config: Config, ingest: IngestResult) -> BatchSummary:
    """Collapse duplicates, write ``staged/cases.csv`` and ``staged/manifest.json``, and summarise.

    Deterministic: the same ledger gives byte-identical staged files, so a
    rerun changes nothing.
    """
    cases, _ = read_cases(Path(input_dir) / CASES_FILE)
    by_id = {case.contribution_id: case for case in cases}
    _exclude_exact_duplicates(ledger, by_id)
    summary = BatchSummary(batch=ingest.batch, workspace=str(workspace.root))
    summary.problems = [{"where": where, "problem": problem} for where, problem in ingest.problems]
    records = [r for cid in by_id for r in ledger.images(contribution_id=cid)]
    staged_by_case: dict[str, list[tuple[str, str]]] = {}
    for record in records:
        details = ledger.image_details(record.image_id)
        summary.images_in += 1
        summary.items.append(
            {
                "image_id": record.image_id,
                "contribution_id": record.contribution_id,
                "original_name": record.original_name,
                "status": str(record.status),
                "action": str(record.action) if record.action else None,
                "reasons": list(record.reasons),
                "output": record.staged_name,
            }
        )
        if record.status is Status.OK and record.staged_name:
            summary.released += 1
            summary.redacted += record.action is Action.REDACT
            summary.cropped += record.action is Action.CROP
            shot = details.get("shot_type") or ""
            staged_by_case.setdefault(record.contribution_id, []).append((f"images/{record.staged_name}", shot))
        elif record.status is Status.HELD:
            summary.held += 1
        else:
            summary.excluded += 1
    rows = _release_rows(by_id, staged_by_case, ledger, config, ingest.batch)
    summary.cases_staged = len(rows)
    summary.cases_held = len(by_id) - len(rows)
    _write_cases_csv(workspace.staged / CASES_FILE, rows)
    write_manifest(workspace.staged)
    return summary


def _exclude_exact_duplicates(ledger: Ledger, cases: Mapping[str, Case]) -> None:
    """Within the batch, keep the first copy of byte-identical images; exclude the rest."""
    first_seen: dict[str, str] = {}
    for contribution_id in cases:
        for record in ledger.images(contribution_id=contribution_id):
            keeper = first_seen.setdefault(record.sha256, record.image_id)
            if keeper != record.image_id and record.status is not Status.EXCLUDED:
                ledger.set_image_status(
                    record.image_id, Status.EXCLUDED, [f"duplicate: same bytes as image {keeper}"], actor="dedup"
                )


RELEASE_COLUMNS = (
    "case_id",
    "source",
    "release",
    "year",
    "age_group",
    "image_1_path",
    "image_2_path",
    "image_3_path",
    "image_1_shot_type",
    "image_2_shot_type",
    "image_3_shot_type",
)


def _release_rows(
    cases: Mapping[str, Case],
    staged: Mapping[str, list[tuple[str, str]]],
    ledger: Ledger,
    config: Config,
    batch: str,
) -> list[dict[str, str]]:
    case_ids = ledger.case_ids()
    rows: list[dict[str, str]] = []
    for contribution_id, case in cases.items():
        images = staged.get(contribution_id, [])
        status = ledger.contribution_status(contribution_id)
        if not images or (status and status[0] is not Status.OK):
            continue
        row = {
            "case_id": str(case_ids[contribution_id]),
            "source": "deid",
            "release": batch,
            "year": demographics.year_of(case.submitted_at),
            "age_group": demographics.bucket_age(case.age),
        }
        for index in range(3):
            path, shot = images[index] if index < len(images) else ("", "")
            row[f"image_{index + 1}_path"] = path
            row[f"image_{index + 1}_shot_type"] = shot
        rows.append(row)
    return sorted(rows, key=lambda r: int(r["case_id"]))


def _write_cases_csv(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RELEASE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _write_atomic(path, buffer.getvalue().encode("utf-8"))


def write_manifest(staged: Path) -> Path:
    """Write ``manifest.json`` with the SHA-256 and size of every staged file, sorted by path."""
    files = {}
    for path in sorted(p for p in staged.rglob("*") if p.is_file() and p.name != MANIFEST_FILE and not p.name.endswith(".partial")):
        data = path.read_bytes()
        files[path.relative_to(staged).as_posix()] = {"sha256": sha256_hex(data), "bytes": len(data)}
    manifest = staged / MANIFEST_FILE
    _write_atomic(manifest, (json.dumps({"files": files}, indent=2, sort_keys=True) + "\n").encode())
    return manifest
