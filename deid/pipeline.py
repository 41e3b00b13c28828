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

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from deid.cases import read_cases, resolve_image_path
from deid.config import Config
from deid.crop import estimate_skin_mask
from deid.demographics import build_release_table, read_release_csv, write_release_csv
from deid.detect import Detector, build_detectors, detect_regions, make_detection_copy
from deid.errors import DeidError, InputError, UnreadableImage, UnsupportedFormat
from deid.io import load_image, read_bytes, write_atomic
from deid.ledger import NOT_PROCESSED, Ledger, ledger_url
from deid.match import (
    DiskMatchIndex,
    Fingerprints,
    MatchIndex,
    MatchResult,
    Verdict,
    build_web_searches,
    cluster_duplicates,
    file_reference_loader,
    match_image,
)
from deid.metadata import (
    SUFFIXES,
    MetadataReport,
    aggregate_metadata,
    encode_clean,
    inspect_metadata,
    is_known_appendix,
    trailing_data,
)
from deid.policy import apply_policy
from deid.preview import is_preview_needed, write_match_preview, write_preview
from deid.redact import render_decision
from deid.skin_tone import estimate_skin_tone
from deid.types import Action, Case, Decision, Match, Region, RGBImage, Status
from deid.verify_bytes import verify_clean

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

    @property
    def release_index(self) -> Path:
        """Fingerprints of every image already released (a :class:`~deid.match.DiskMatchIndex`)."""
        return self.root / "release-index"

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
    kept_metadata: dict[str, Any] | None = None
    skin_tone: dict[str, Any] | None = None
    fingerprints: dict[str, Any] | None = None
    matches: tuple[tuple[Match, str], ...] = ()
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
    anonymity: dict[str, Any] = field(default_factory=dict)
    public_copies: list[dict[str, str]] = field(default_factory=list)

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
            "public_copies": self.public_copies,
            "anonymity": self.anonymity,
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
                action = f" {item['action']}" if item["status"] == Status.OK and item["action"] else ""
                proposal = f" [{item['proposal']}]" if item.get("proposal") else ""
                lines.append(f"  - {item['original_name']}: {item['status']}{action} ({why}){proposal}")
        for copy in self.public_copies:
            lines.append(f"  public copy excluded: {copy['original_name']} ({copy['evidence']})")
        for problem in self.problems:
            lines.append(f"  ! {problem['where']}: {problem['problem']}")
        if self.anonymity:
            lines.append(
                f"  k-anonymity: k={self.anonymity.get('k_achieved')} (target {self.anonymity.get('k_target')}), "
                f"information loss {self.anonymity.get('information_loss')}"
            )
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
        kept = _keep_named_originals(input_root, workspace, problem.image_names)
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
                digest, original = _keep_file(workspace, source)
            except InputError as error:
                problems.append((where, str(error)))
                ledger.set_contribution_status(case.contribution_id, Status.HELD, [error.reason], actor="ingest")
                continue
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
            tasks.append(
                ImageTask(
                    record.image_id,
                    case.contribution_id,
                    case_image.file,
                    str(original),
                    tuple(sorted(case.body_parts)),
                )
            )
    logger.info(
        "ingested batch %s: %d image(s) to process, %d already done, %d problem(s)",
        batch,
        len(tasks),
        len(done),
        len(problems),
    )
    return IngestResult(batch, tuple(tasks), tuple(done), tuple(problems))


def _keep_named_originals(input_root: Path, workspace: Workspace, names: Sequence[str]) -> list[str]:
    """Keep (privately) the images a rejected row names, where they resolve safely; return their digests."""
    kept: list[str] = []
    for name in names:
        try:
            kept.append(_keep_file(workspace, resolve_image_path(input_root, name))[0])
        except InputError:
            continue
    return kept


def _keep_file(workspace: Workspace, source: Path) -> tuple[str, Path]:
    """Copy a file into ``originals/<sha256[:2]>/<sha256><suffix>`` in bounded memory; return digest and path.

    Nothing is decoded and no size limit applies here: even a file the loader
    will refuse (over-size, empty, a bomb) is kept, so the reviewer has it.

    Raises
    ------
    UnreadableImage
        If the file cannot be read.
    """
    digest = hashlib.sha256()
    partial = workspace.originals / f".incoming-{secrets.token_hex(8)}"
    try:
        with source.open("rb") as reader, partial.open("wb") as writer:
            while chunk := reader.read(1 << 20):
                digest.update(chunk)
                writer.write(chunk)
        folder = workspace.originals / digest.hexdigest()[:2]
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{digest.hexdigest()}{source.suffix.lower()[:16]}"
        if target.exists():
            partial.unlink()
        else:
            partial.replace(target)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise UnreadableImage(f"cannot read file: {error.strerror}", path=source) from error
    return digest.hexdigest(), target


def _is_finished(status: Status, reasons: Sequence[str], staged_name: str | None, workspace: Workspace) -> bool:
    if reasons == (NOT_PROCESSED,):
        return False
    if status is Status.OK:
        return staged_name is not None and (workspace.staged_images / staged_name).exists()
    if status is Status.HELD and staged_name is not None:
        return (workspace.held / staged_name).exists()
    return True


_DETECTORS: dict[str, tuple[Detector, ...]] = {}


def detectors_for(config: Config) -> Sequence[Detector]:
    """The detectors for a configuration, built once per process (models are heavy).

    Keyed on the ``[detection]`` settings themselves (their repr is stable: frozen
    dataclasses over TOML tables), so a configuration built in code is served too.
    """
    key = repr(config.detection)
    if key not in _DETECTORS:
        _DETECTORS[key] = tuple(build_detectors(config))
    return _DETECTORS[key]


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
    return replace(result, seconds=seconds)


def _check_trailing_data(path: Path, report: MetadataReport, config: Config) -> None:
    """Hold polyglots: an image followed by an archive, HTML or unknown bytes (per ``input.trailing_data``)."""
    trailing = trailing_data(report)
    if trailing is None or config.input.trailing_data == "ignore":
        return
    if config.input.trailing_data == "hold_any" or not is_known_appendix(trailing):
        raise UnsupportedFormat(
            f"polyglot: {trailing}", path=path, hint="input.trailing_data; release files never carry these bytes"
        )


@lru_cache(maxsize=4)
def _open_index(directory: str) -> MatchIndex:
    """A read-only view of a persistent match index, opened once per process."""
    return DiskMatchIndex(directory, readonly=True)


def _match(pixels: RGBImage, config: Config, workspace: Workspace) -> MatchResult:
    """Public copies (the curators' index, web search if configured) and images of earlier releases."""
    public = _open_index(str(Path(config.match.index_dir).resolve())) if config.match.index_dir else None
    released = _open_index(str(workspace.release_index)) if (workspace.release_index / "meta.json").exists() else None
    return match_image(
        pixels,
        public,
        config.match,
        release_index=released,
        load_reference=file_reference_loader(config.input),
        web=build_web_searches(config.match),
    )


def _write_match_preview(pixels: RGBImage, matched: MatchResult, config: Config, path: Path) -> None:
    """The contribution beside its closest reference, for the reviewer (or the exclusion record)."""
    reference = None
    if matched.matches:
        try:
            reference = file_reference_loader(config.input)(matched.matches[0].match.reference)
        except DeidError:
            reference = None  # the reference file moved; the preview says so
    write_match_preview(pixels, reference, [str(matched.verdict), *matched.reasons[:1]], path)


def _process(task: ImageTask, config: Config, workspace: Workspace, detectors: Sequence[Detector]) -> ImageResult:
    source = Path(task.original_path)
    raw = read_bytes(source, config.input)
    report = inspect_metadata(source, data=raw)
    _check_trailing_data(source, report, config)
    loaded = load_image(source, config.input, data=raw)
    pixels = loaded.pixels
    # One downscaled copy serves detection and matching (fingerprints and ORB need no more).
    copy, _ = make_detection_copy(pixels, max_side_px=config.detection.max_side_px)
    matched = _match(copy, config, workspace)
    evidence: dict[str, Any] = {
        "kept_metadata": aggregate_metadata(report),
        "fingerprints": matched.fingerprints.for_reference(config.match.reference_features).to_json(),
        "matches": tuple((e.match, str(e.verdict)) for e in matched.matches),
        "width": loaded.width,
        "height": loaded.height,
        "image_format": loaded.format,
    }
    if matched.verdict is not Verdict.NONE:
        _write_match_preview(pixels, matched, config, workspace.previews / f"{task.image_id}_match.png")
    if matched.verdict in (Verdict.PUBLIC_COPY, Verdict.DUPLICATE):
        return ImageResult(task.image_id, Status.EXCLUDED, (*loaded.notes, *matched.reasons), **evidence)
    found = detect_regions(pixels, detectors, max_side_px=config.detection.max_side_px, detection_copy=copy)
    decision = apply_policy(
        found, config.policy, body_parts=task.body_parts, image_shape=pixels.shape, skin_mask=estimate_skin_mask(pixels)
    )
    reasons = (*loaded.notes, *matched.reasons, *decision.reasons)
    base: dict[str, Any] = {"regions": tuple(found), **evidence}
    preview = workspace.previews / f"{task.image_id}.png"
    if decision.action is Action.EXCLUDE:
        write_preview(pixels, found, decision, None, preview)
        return ImageResult(task.image_id, Status.EXCLUDED, reasons, decision, **base)
    rendered = render_decision(pixels, decision, config.policy)
    if is_preview_needed(decision):
        write_preview(pixels, found, decision, rendered, preview)
    small, _ = make_detection_copy(rendered, max_side_px=512)
    tone = estimate_skin_tone(small, fill_rgb=config.policy.fill_rgb).to_json()
    data = encode_clean(rendered, config.output)
    verdict = verify_clean(data, path=source, decode=False)
    if not verdict.ok:  # never expected: a fresh encode carries nothing; fail closed if it ever does
        raise DeidError("encoded output failed verification: " + "; ".join(verdict.problems), path=source)
    name = f"{task.image_id}{SUFFIXES[config.output.format]}"
    status = Status.HELD if decision.action is Action.HOLD or matched.verdict is Verdict.REVIEW else Status.OK
    target = (workspace.held if status is Status.HELD else workspace.staged_images) / name
    write_atomic(target, data)
    return ImageResult(
        task.image_id,
        status,
        reasons,
        decision,
        output_name=name,
        output_sha256=sha256_hex(data),
        skin_tone=tone,
        **base,
    )


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
        kept_metadata=result.kept_metadata,
        skin_tone=result.skin_tone,
        fingerprints=result.fingerprints,
    )
    if result.matches:
        ledger.record_matches(result.image_id, result.matches, actor="match")


def finish_batch(
    input_dir: str | Path, workspace: Workspace, ledger: Ledger, config: Config, ingest: IngestResult
) -> BatchSummary:
    """Collapse duplicates, build the k-anonymous case table, write ``cases.csv`` and ``manifest.json``.

    A contribution the demographics step holds (under age, no case id) or
    suppresses (k-anonymity) has its staged images moved back to ``held/``,
    so ``staged/`` holds exactly the images its ``cases.csv`` names.
    Deterministic: the same ledger gives byte-identical staged files, so a
    rerun changes nothing.
    """
    cases, _ = read_cases(Path(input_dir) / CASES_FILE)
    by_id = {case.contribution_id: case for case in cases}
    _exclude_exact_duplicates(ledger, workspace, by_id)
    _exclude_near_duplicates(ledger, workspace, by_id, config)
    image_paths = {
        cid: [
            (f"images/{r.staged_name}", r.shot_type or "")
            for r in ledger.images(contribution_id=cid)
            if r.status is Status.OK and r.staged_name
        ]
        for cid in by_id
    }
    table = build_release_table(
        list(by_id.values()),
        config.demographics,
        case_ids=ledger.case_ids(),
        image_paths=image_paths,
        release=ingest.batch,
        earlier_rows=earlier_release_rows(workspace),
    )
    withheld = {
        **{cid: f"case held: {why}" for cid, why in table.held.items()},
        **{cid: f"case suppressed: {why}" for cid, why in table.suppressed.items()},
    }
    for contribution_id, reason in withheld.items():
        _withhold_case(ledger, workspace, contribution_id, reason)
    write_release_csv(table, workspace.staged / CASES_FILE, include_earlier=False)
    write_manifest(workspace.staged)
    return _summarise(ingest, workspace, ledger, by_id, len(table.rows), table.report.to_json())


def earlier_release_rows(workspace: Workspace) -> list[dict[str, str]]:
    """Rows of every earlier release kept in ``<workspace>/releases/*/cases.csv`` (public, so they count for k)."""
    rows: list[dict[str, str]] = []
    for path in sorted((workspace.root / "releases").glob(f"*/{CASES_FILE}")):
        rows.extend(read_release_csv(path))
    return rows


def _withhold_case(ledger: Ledger, workspace: Workspace, contribution_id: str, reason: str) -> None:
    """Move a withheld case's staged images to ``held/`` and record why (after any earlier reason)."""
    current = ledger.contribution_status(contribution_id)
    earlier = current[1] if current is not None and current[0] is Status.HELD else ()
    reasons = tuple(dict.fromkeys((*earlier, reason)))
    if current != (Status.HELD, reasons):
        ledger.set_contribution_status(contribution_id, Status.HELD, reasons, actor="demographics")
    for record in ledger.images(contribution_id=contribution_id):
        if record.status is Status.OK and record.staged_name:
            staged = workspace.staged_images / record.staged_name
            if staged.exists():
                staged.replace(workspace.held / record.staged_name)
            ledger.set_image_status(record.image_id, Status.HELD, [reason], actor="demographics")


def _summarise(
    ingest: IngestResult,
    workspace: Workspace,
    ledger: Ledger,
    cases: Mapping[str, Case],
    rows: int,
    anonymity: dict[str, Any],
) -> BatchSummary:
    summary = BatchSummary(batch=ingest.batch, workspace=str(workspace.root), anonymity=anonymity)
    summary.problems = [{"where": where, "problem": problem} for where, problem in ingest.problems]
    for record in (r for cid in cases for r in ledger.images(contribution_id=cid)):
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
                "proposal": _proposal(ledger, record.image_id) if record.status is Status.HELD else "",
            }
        )
        public = [reason for reason in record.reasons if reason.startswith("match.public_copy")]
        if public:
            summary.public_copies.append(
                {"image_id": record.image_id, "original_name": record.original_name, "evidence": public[0]}
            )
        if record.status is Status.OK:
            summary.released += 1
            summary.redacted += record.action is Action.REDACT
            summary.cropped += record.action is Action.CROP
        elif record.status is Status.HELD:
            summary.held += 1
        else:
            summary.excluded += 1
    summary.cases_staged = rows
    summary.cases_held = len(cases) - rows + len(ingest.problems)
    return summary


def _proposal(ledger: Ledger, image_id: str) -> str:
    """What the held candidate already does, in words: ``redacts face 0.93, text 0.75``."""
    decision = ledger.latest_decision(image_id)
    if decision is None or not decision["regions"]:
        return ""
    listed = ", ".join(f"{region['kind']} {region['score']:.2f}" for region in decision["regions"])
    return f"the held candidate redacts {listed}"


def _exclude_near_duplicates(ledger: Ledger, workspace: Workspace, cases: Mapping[str, Case], config: Config) -> None:
    """Cluster the batch's near-identical images (and hits on earlier releases); keep one per cluster."""
    candidates = [
        r.image_id for cid in cases for r in ledger.images(contribution_id=cid) if r.status is not Status.EXCLUDED
    ]
    stored = ledger.fingerprints_of(candidates)
    items = {image_id: Fingerprints.from_json(stored[image_id]) for image_id in candidates if image_id in stored}
    released = _open_index(str(workspace.release_index)) if (workspace.release_index / "meta.json").exists() else None
    for cluster in cluster_duplicates(items, config.match, release_index=released):
        links = dict(cluster.matches)
        for image_id in cluster.excluded:
            link = links.get(image_id)
            distance = f" at {link.distance:g} bits" if link is not None else ""
            where = "an image of an earlier release" if cluster.released else f"image {cluster.kept}"
            _exclude(ledger, workspace, image_id, f"duplicate: near-identical to {where}{distance}")


def _exclude(ledger: Ledger, workspace: Workspace, image_id: str, reason: str) -> None:
    """Exclude an image: drop its candidate file (the original stays in originals/) and record why."""
    record = ledger.image(image_id)
    if record.staged_name:
        for folder in (workspace.staged_images, workspace.held):
            (folder / record.staged_name).unlink(missing_ok=True)
    ledger.set_image_status(image_id, Status.EXCLUDED, [reason], actor="dedup")


def _exclude_exact_duplicates(ledger: Ledger, workspace: Workspace, cases: Mapping[str, Case]) -> None:
    """Within the batch, keep the first copy of byte-identical images; exclude the rest.

    An excluded copy's candidate file is removed from ``staged/`` and ``held/``;
    its original stays in ``originals/``.
    """
    first_seen: dict[str, str] = {}
    for contribution_id in cases:
        for record in ledger.images(contribution_id=contribution_id):
            keeper = first_seen.setdefault(record.sha256, record.image_id)
            if keeper != record.image_id and record.status is not Status.EXCLUDED:
                _exclude(ledger, workspace, record.image_id, f"duplicate: same bytes as image {keeper}")


def write_manifest(staged: Path) -> Path:
    """Write ``manifest.json`` with the SHA-256 and size of every staged file, sorted by path."""
    files = {}
    for path in sorted(
        p for p in staged.rglob("*") if p.is_file() and p.name != MANIFEST_FILE and not p.name.endswith(".partial")
    ):
        data = path.read_bytes()
        files[path.relative_to(staged).as_posix()] = {"sha256": sha256_hex(data), "bytes": len(data)}
    manifest = staged / MANIFEST_FILE
    write_atomic(manifest, (json.dumps({"files": files}, indent=2, sort_keys=True) + "\n").encode())
    return manifest
