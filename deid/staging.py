"""Candidates on disk: render, encode, verify, write; and the only moves between folders.

A *candidate* is the file that would be released for one image: the
original's upright pixels with a decision applied (:func:`deid.redact.render_decision`),
freshly encoded with no metadata (:func:`deid.metadata.encode_clean`),
checked byte by byte (:func:`deid.verify_bytes.verify_clean`) and only then
written, atomically, into ``staged/images`` (releasable) or ``held/`` (waiting
for a reviewer). The batch, ``deid redact`` and the review queue all call
:func:`stage_candidate`; :func:`hold_candidate` and :func:`exclude_candidate`
are the only other ways a candidate moves. Nothing else in deid writes,
moves or deletes files in those two folders.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from deid.config import Config
from deid.detect import make_detection_copy
from deid.errors import OutputError, VerificationFailed
from deid.io import write_atomic
from deid.metadata import SUFFIXES, encode_clean
from deid.redact import render_decision
from deid.skin_tone import SkinToneEstimate, estimate_skin_tone
from deid.types import Decision, RGBImage, Status
from deid.verify_bytes import verify_clean
from deid.workspace import Workspace

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EncodedCandidate:
    """A rendered candidate's pixels and its verified, metadata-free bytes."""

    pixels: RGBImage
    data: bytes

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the encoded bytes."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True, slots=True)
class StagedCandidate:
    """A candidate written to ``staged/images`` or ``held/``."""

    name: str
    sha256: str
    status: Status
    skin_tone: SkinToneEstimate | None = None


def candidate_name(image_id: str, config: Config) -> str:
    """The candidate's file name: the private image id and the output format's suffix (never the original name)."""
    return f"{image_id}{SUFFIXES[config.output.format]}"


def encode_candidate(pixels: RGBImage, decision: Decision, config: Config, *, path: str | Path) -> EncodedCandidate:
    """Render ``decision`` on ``pixels``, encode fresh and verify the bytes.

    Parameters
    ----------
    pixels
        The upright full-resolution original; never modified.
    decision
        What to fill and crop (from the policy or a reviewer).
    config
        Policy (margins, fill) and output (format) settings.
    path
        The original's path, named in any error.

    Returns
    -------
    EncodedCandidate
        The rendered pixels and bytes that passed :func:`~deid.verify_bytes.verify_clean`.

    Raises
    ------
    VerificationFailed
        If the encoded bytes carry anything but one picture (never expected of a
        fresh encode; the item is then held, never released).
    """
    rendered = render_decision(pixels, decision, config.policy)
    data = encode_clean(rendered, config.output)
    report = verify_clean(data, path=path, decode=False)
    if not report.ok:
        raise VerificationFailed("encoded output failed verification: " + "; ".join(report.problems), path=path)
    return EncodedCandidate(rendered, data)


def stage_candidate(
    workspace: Workspace,
    image_id: str,
    pixels: RGBImage,
    decision: Decision,
    config: Config,
    *,
    status: Status,
    path: str | Path,
) -> StagedCandidate:
    """Encode a verified candidate and write it where ``status`` says; the one way a candidate is written.

    ``Status.OK`` writes ``staged/images/<name>``, ``Status.HELD`` writes
    ``held/<name>``; a copy of the same name in the other folder is removed,
    so a candidate is never in both. The write is atomic.

    Parameters
    ----------
    workspace
        The private workspace.
    image_id
        The image's ledger id; it names the file.
    pixels, decision, config, path
        As for :func:`encode_candidate`.
    status
        ``OK`` (releasable) or ``HELD`` (for a reviewer).

    Returns
    -------
    StagedCandidate
        Its name, digest, folder and the estimated skin tone of the rendered pixels.

    Raises
    ------
    ValueError
        If ``status`` is ``EXCLUDED`` (use :func:`exclude_candidate`).
    VerificationFailed
        If the bytes fail verification; nothing is written.
    DeidError
        If the file cannot be written.
    """
    if status is Status.EXCLUDED:  # checked before the encode it would waste
        raise ValueError("an excluded image has no candidate; call exclude_candidate")
    return stage_encoded(
        workspace, image_id, encode_candidate(pixels, decision, config, path=path), config, status=status
    )


def stage_encoded(
    workspace: Workspace, image_id: str, encoded: EncodedCandidate, config: Config, *, status: Status
) -> StagedCandidate:
    """Write an already verified candidate (from :func:`encode_candidate`) where ``status`` says.

    :func:`stage_candidate` is this after :func:`encode_candidate`; the batch
    calls the two halves itself so that its preview shows the very pixels
    that were staged.

    Raises
    ------
    ValueError
        If ``status`` is ``EXCLUDED`` (use :func:`exclude_candidate`).
    DeidError
        If the file cannot be written.
    """
    if status is Status.EXCLUDED:
        raise ValueError("an excluded image has no candidate; call exclude_candidate")
    small, _ = make_detection_copy(encoded.pixels, max_side_px=config.skin.tone_side_px)
    tone = estimate_skin_tone(small, fill_rgb=config.policy.fill_rgb, skin=config.skin)
    name = candidate_name(image_id, config)
    target, other = _folders(workspace, status)
    write_atomic(target / name, encoded.data)
    (other / name).unlink(missing_ok=True)
    return StagedCandidate(name, encoded.sha256, status, tone)


def hold_candidate(workspace: Workspace, name: str) -> None:
    """Move a staged candidate to ``held/`` (a case withheld after its images were staged).

    A candidate already in ``held/`` stays; a missing one is not an error (a
    rerun after a crash may have moved it already).

    Raises
    ------
    OutputError
        If the file cannot be moved.
    """
    source = workspace.staged_images / _safe(name)
    if not source.exists():
        return
    try:
        workspace.held.mkdir(parents=True, exist_ok=True)
        source.replace(workspace.held / name)
    except OSError as error:
        raise OutputError(f"cannot hold candidate: {error.strerror}", path=source) from error
    logger.info("held candidate %s", name)


def exclude_candidate(workspace: Workspace, name: str) -> None:
    """Delete a candidate from ``staged/images`` and ``held/`` (its original stays in ``originals/``).

    Raises
    ------
    OutputError
        If a file exists and cannot be removed.
    """
    for folder in (workspace.staged_images, workspace.held):
        target = folder / _safe(name)
        try:
            target.unlink(missing_ok=True)
        except OSError as error:
            raise OutputError(f"cannot remove candidate: {error.strerror}", path=target) from error


def sweep_partial_writes(workspace: Workspace) -> int:
    """Remove the hidden ``.partial`` files an interrupted write left in ``staged/`` and ``held/``; return how many.

    :func:`deid.io.write_atomic` renames a complete file into place, so a
    ``.partial`` file is never a candidate: only what a killed run was
    writing. Called when a batch finishes (one run per workspace at a time).
    """
    removed = 0
    for folder in (workspace.staged_images, workspace.staged, workspace.held):
        for partial in folder.glob(".*.partial"):
            partial.unlink(missing_ok=True)
            removed += 1
    if removed:
        logger.info("removed %d partial write(s) left by an interrupted run", removed)
    return removed


def _folders(workspace: Workspace, status: Status) -> tuple[Path, Path]:
    if status is Status.OK:
        return workspace.staged_images, workspace.held
    return workspace.held, workspace.staged_images


def _safe(name: str) -> str:
    """A candidate name is a bare file name; anything else is a programming error, never a path to follow."""
    if not name or Path(name).name != name or name.startswith("."):
        raise ValueError(f"not a candidate name: {name!r}")
    return name
