"""The per-image chain, for a batch image or a loose file.

Per image: read and inspect -> load upright -> match (a public copy or a
duplicate stops here) -> detect on one downscaled copy -> apply the policy ->
:func:`deid.staging.stage_candidate` (render, encode, verify, atomic write).
Any error holds the image (fail closed).

:func:`process_image` serves the batch. It reads one original, writes one
candidate and returns an :class:`ImageResult`; the flow records it with
:func:`record_image_result`. Workers never touch the ledger, which is what
lets the same flow fan out on a Dask cluster sharing only the workspace
folder. :func:`redact_file` is the same chain for one loose file, as
``deid redact`` runs it: no ledger, no matching, the same verified writes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from deid.config import Config
from deid.crop import estimate_skin_mask
from deid.detect import Detector, detect_regions, detectors_for, make_detection_copy
from deid.errors import DeidError, UnsupportedFormat
from deid.ingest import ImageTask
from deid.io import load_image, read_bytes, write_atomic
from deid.ledger import Ledger
from deid.match import Fingerprints, MatchResult, Verdict, build_web_searches, file_reference_loader, match_image
from deid.metadata import (
    SUFFIXES,
    MetadataReport,
    aggregate_metadata,
    inspect_metadata,
    is_known_appendix,
    trailing_data,
)
from deid.policy import apply_policy, is_releasable
from deid.preview import is_preview_needed, write_match_preview, write_preview
from deid.release import open_index, open_release_index
from deid.skin_tone import SkinToneEstimate
from deid.staging import encode_candidate, stage_encoded
from deid.types import Action, Decision, Match, Outcome, Region, RGBImage, Status
from deid.workspace import Workspace

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ImageResult:
    """What processing one image found, decided and wrote."""

    image_id: str
    outcome: Outcome
    decision: Decision | None = None
    regions: tuple[Region, ...] = ()
    output_name: str | None = None
    output_sha256: str | None = None
    width: int | None = None
    height: int | None = None
    image_format: str | None = None
    kept_metadata: Mapping[str, object] | None = None
    skin_tone: SkinToneEstimate | None = None
    fingerprints: Fingerprints | None = None
    matches: tuple[tuple[Match, str], ...] = ()
    seconds: float = 0.0
    stages: tuple[tuple[str, float], ...] = ()
    """Seconds per stage (read, decode, match, detect, policy, encode, write), in order."""

    @property
    def status(self) -> Status:
        """Where the image stands: ok (staged), held (for a reviewer) or excluded."""
        return self.outcome.status

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every rule and note behind the outcome."""
        return self.outcome.reasons


def process_image(
    task: ImageTask,
    config: Config,
    workspace: Workspace,
    *,
    detectors: Sequence[Detector] | None = None,
) -> ImageResult:
    """Load, match, detect, decide, render, encode and verify one image; write its candidate.

    Never raises for a bad image: any error becomes a held result naming the
    error (by ledger id, never the contributor's data), so the batch goes on
    and nothing unverified is staged.
    """
    started = time.perf_counter()
    try:
        result = _process(task, config, workspace, detectors if detectors is not None else detectors_for(config))
    except DeidError as error:
        logger.warning("held image %s: %s", task.image_id, error.code)
        result = ImageResult(task.image_id, Outcome.held(error.reason))
    except Exception as error:  # fail closed: an unexpected fault holds this image, never releases it
        logger.exception("internal error on image %s", task.image_id)
        result = ImageResult(task.image_id, Outcome.held(f"internal_error: {type(error).__name__}: {error}"))
    seconds = time.perf_counter() - started
    logger.info("processed image %s -> %s in %.2fs", task.image_id, result.status, seconds)
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


def _match(pixels: RGBImage, config: Config, workspace: Workspace) -> MatchResult:
    """Public copies (the curators' index, web search if configured) and images of earlier releases."""
    public = open_index(str(Path(config.match.index_dir).resolve())) if config.match.index_dir else None
    return match_image(
        pixels,
        public,
        config.match,
        release_index=open_release_index(workspace),
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


class _StageClock:
    """Seconds spent in each stage of one image, lap by lap."""

    def __init__(self) -> None:
        self.laps: list[tuple[str, float]] = []
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps.append((stage, now - self._last))
        self._last = now


def _process(task: ImageTask, config: Config, workspace: Workspace, detectors: Sequence[Detector]) -> ImageResult:
    clock = _StageClock()
    result = _process_timed(task, config, workspace, detectors, clock)
    return replace(result, stages=tuple(clock.laps))


def _process_timed(
    task: ImageTask, config: Config, workspace: Workspace, detectors: Sequence[Detector], clock: _StageClock
) -> ImageResult:
    source = Path(task.original_path)
    raw = read_bytes(source, config.input)
    report = inspect_metadata(source, data=raw)
    _check_trailing_data(source, report, config)
    clock.lap("read")
    loaded = load_image(source, config.input, data=raw)
    pixels = loaded.pixels
    # One downscaled copy serves detection and matching (fingerprints and ORB need no more).
    copy, _ = make_detection_copy(pixels, max_side_px=config.detection.max_side_px)
    clock.lap("decode")
    matched = _match(copy, config, workspace)
    clock.lap("match")
    evidence = ImageResult(
        task.image_id,
        Outcome.held(),
        kept_metadata=aggregate_metadata(report),
        fingerprints=matched.fingerprints.for_reference(config.match.reference_features),
        matches=tuple((e.match, str(e.verdict)) for e in matched.matches),
        width=loaded.width,
        height=loaded.height,
        image_format=loaded.format,
    )
    if matched.verdict is not Verdict.NONE:
        _write_match_preview(pixels, matched, config, workspace.previews / f"{task.image_id}_match.png")
    if matched.verdict in (Verdict.PUBLIC_COPY, Verdict.DUPLICATE):
        return replace(evidence, outcome=Outcome.excluded(*loaded.notes, *matched.reasons))
    found = detect_regions(pixels, detectors, max_side_px=config.detection.max_side_px, detection_copy=copy)
    clock.lap("detect")
    decision = apply_policy(
        found,
        config.policy,
        body_parts=task.body_parts,
        image_shape=pixels.shape,
        skin_mask=estimate_skin_mask(pixels, skin=config.skin),
    )
    clock.lap("policy")
    reasons = (*loaded.notes, *matched.reasons, *decision.reasons)
    preview = workspace.previews / f"{task.image_id}.png"
    if decision.action is Action.EXCLUDE:
        write_preview(pixels, found, decision, None, preview)
        return replace(evidence, outcome=Outcome.excluded(*reasons), decision=decision, regions=tuple(found))
    held = decision.action is Action.HOLD or matched.verdict is Verdict.REVIEW
    encoded = encode_candidate(pixels, decision, config, path=source)
    clock.lap("encode")
    staged = stage_encoded(workspace, task.image_id, encoded, config, status=Status.HELD if held else Status.OK)
    if is_preview_needed(decision):
        write_preview(pixels, found, decision, encoded.pixels, preview)
    clock.lap("write")
    return replace(
        evidence,
        outcome=Outcome(staged.status, reasons),
        decision=decision,
        regions=tuple(found),
        output_name=staged.name,
        output_sha256=staged.sha256,
        skin_tone=staged.skin_tone,
    )


def record_image_result(ledger: Ledger, result: ImageResult) -> None:
    """Store a result in the ledger with its audit event (JSON forms are made here, at the ledger's edge)."""
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
        kept_metadata=dict(result.kept_metadata) if result.kept_metadata is not None else None,
        skin_tone=result.skin_tone.to_json() if result.skin_tone is not None else None,
        fingerprints=result.fingerprints.to_json() if result.fingerprints is not None else None,
    )
    if result.matches:
        ledger.record_matches(result.image_id, result.matches, actor="match")


@dataclass(frozen=True, slots=True)
class RedactedFile:
    """What :func:`redact_file` did with one loose file."""

    file: str
    decision: Decision
    regions: tuple[Region, ...]
    output: str | None = None
    preview: str | None = None

    @property
    def status(self) -> Status:
        """``ok`` (written), ``held`` or ``excluded``."""
        if self.decision.action is Action.EXCLUDE:
            return Status.EXCLUDED
        return Status.HELD if self.decision.action is Action.HOLD else Status.OK

    @property
    def verdict(self) -> str:
        """The word ``deid redact`` prints: ``released``, ``held`` or ``excluded``."""
        return "released" if self.status is Status.OK else str(self.status)

    def to_json(self) -> dict[str, object]:
        """One JSON line for ``deid redact``: decision, reasons, regions, crop (boxes as ``[x, y, w, h]``)."""
        decision = self.decision.to_json()
        return {
            "file": self.file,
            "decision": self.verdict,
            "action": decision["action"],
            "reasons": decision["reasons"],
            "regions": [region.to_json() for region in self.regions],
            "applied": decision["regions"],
            "crop": decision["crop"],
            "output": self.output,
            "preview": self.preview,
        }


def redact_file(
    path: str | Path,
    config: Config,
    detectors: Sequence[Detector],
    *,
    out_dir: str | Path,
    preview_dir: str | Path | None = None,
) -> RedactedFile:
    """Load, detect, decide and (when it may be released) write one loose file, verified like the batch.

    The file is written atomically to ``out_dir/<stem>.png`` (or ``.jpg``) as
    freshly encoded pixels that passed :func:`deid.verify_bytes.verify_clean`;
    a held or excluded file writes nothing there. With ``preview_dir``, a
    before/after preview of every held or altered file goes to
    ``preview_dir/<stem>.preview.png``.

    Parameters
    ----------
    path
        The image file.
    config
        The whole configuration (input, detection, policy, output).
    detectors
        From :func:`deid.detect.build_detectors`, built once for many files.
    out_dir
        Where releasable results go.
    preview_dir
        Where previews go (a private folder), or ``None`` for none.

    Returns
    -------
    RedactedFile
        The decision, the regions found and the files written.

    Raises
    ------
    InputError
        If the file cannot be loaded.
    DetectorError
        If a detector fails (the file must then be held).
    VerificationFailed
        If the encoded output fails the byte-level check (nothing is written).
    DeidError
        If an output file cannot be written.
    """
    source = Path(path)
    pixels = load_image(source, config.input).pixels
    regions = detect_regions(pixels, detectors, max_side_px=config.detection.max_side_px)
    decision = apply_policy(
        regions, config.policy, image_shape=pixels.shape, skin_mask=estimate_skin_mask(pixels, skin=config.skin)
    )
    staged: RGBImage | None = None
    output: Path | None = None
    if is_releasable(decision):
        encoded = encode_candidate(pixels, decision, config, path=source)
        staged = encoded.pixels
        output = write_atomic(Path(out_dir) / f"{source.stem}{SUFFIXES[config.output.format]}", encoded.data)
    preview: Path | None = None
    if preview_dir is not None and is_preview_needed(decision):
        preview = write_preview(pixels, regions, decision, staged, Path(preview_dir) / f"{source.stem}.preview.png")
    return RedactedFile(
        str(source), decision, tuple(regions), str(output) if output else None, str(preview) if preview else None
    )
