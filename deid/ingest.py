"""Ingest: keep every original privately and register contributions and images in the ledger.

Each image's bytes are copied to ``originals/`` under their SHA-256, in
bounded memory and before anything decodes them, so even a file the loader
will refuse is kept for the reviewer. An image the ledger has already
finished (and whose candidate is still on disk) is not queued again, which
makes a rerun a no-op.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from deid.cases import read_cases, resolve_image_path
from deid.config import Config
from deid.errors import InputError, UnreadableImage
from deid.ledger import NOT_PROCESSED, Ledger
from deid.types import Case, Status
from deid.workspace import CASES_FILE, Workspace

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ImageTask:
    """One image to process: everything a worker needs, nothing from the ledger."""

    image_id: str
    contribution_id: str
    original_name: str
    original_path: str
    body_parts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CaseSelection:
    """Which contributions of an input folder a partial rerun takes (``deid run --only/--since``).

    Empty ``only`` and no ``since`` take every contribution. ``since`` is an
    ISO date: contributions submitted on or after it.
    """

    only: frozenset[str] = frozenset()
    since: str | None = None

    def __post_init__(self) -> None:
        if self.since is not None:
            try:
                date.fromisoformat(self.since)
            except ValueError:
                raise InputError(f"--since {self.since!r} is not an ISO date", hint="use YYYY-MM-DD") from None

    def includes(self, case: Case) -> bool:
        """Whether ``case`` is part of this run."""
        if self.only and case.contribution_id not in self.only:
            return False
        if self.since is None:
            return True
        try:
            submitted = datetime.fromisoformat(case.submitted_at.strip().replace("Z", "+00:00")).date()
        except ValueError:
            return True  # a bad timestamp is held by the demographics step, never silently skipped
        return submitted >= date.fromisoformat(self.since)


@dataclass(frozen=True, slots=True)
class IngestProblem:
    """Something in the input that could not be used; the contribution concerned is held."""

    where: str
    problem: str


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What ingesting a batch registered."""

    batch: str
    tasks: tuple[ImageTask, ...]
    already_done: tuple[str, ...]
    problems: tuple[IngestProblem, ...] = ()
    contribution_ids: tuple[str, ...] = ()


def ingest_batch(
    input_dir: str | Path,
    workspace: Workspace,
    ledger: Ledger,
    config: Config,
    *,
    selection: CaseSelection | None = None,
) -> IngestResult:
    """Read ``cases.csv``, keep each original privately and register everything in the ledger.

    Each image's bytes are copied to ``originals/`` under their SHA-256 and
    registered under a new random id. An image the ledger has already
    finished (and whose output is still on disk) is not queued again, which
    makes a rerun a no-op.

    With ``selection``, only the contributions it includes are registered and
    queued (a partial rerun); the others are left as they are.

    Raises
    ------
    InputError
        If ``cases.csv`` itself cannot be read; bad rows and missing or unsafe
        image paths do not raise: they are returned as ``problems`` and the
        contribution is held.
    """
    input_root = Path(input_dir)
    batch = input_root.resolve().name
    for partial in workspace.originals.glob(".incoming-*"):  # a copy an interrupted run did not finish
        partial.unlink(missing_ok=True)
    cases, row_problems = read_cases(input_root / CASES_FILE)
    if selection is not None:
        cases = [case for case in cases if selection.includes(case)]
        row_problems = [] if selection.only or selection.since else row_problems
    problems: list[IngestProblem] = []
    for problem in row_problems:
        problems.append(IngestProblem(problem.where, str(problem.error)))
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
                digest, original = keep_original(workspace, source)
            except InputError as error:
                problems.append(IngestProblem(where, str(error)))
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
    return IngestResult(
        batch, tuple(tasks), tuple(done), tuple(problems), tuple(case.contribution_id for case in cases)
    )


def keep_original(workspace: Workspace, source: Path) -> tuple[str, Path]:
    """Copy a file into ``originals/<sha256[:2]>/<sha256><suffix>`` in bounded memory; return digest and path.

    Nothing is decoded and no size limit applies here: even a file the loader
    will refuse (over-size, empty, a bomb) is kept, so the reviewer has it.

    Raises
    ------
    UnreadableImage
        If the file cannot be read.
    """
    digest = hashlib.sha256()
    workspace.originals.mkdir(parents=True, exist_ok=True)
    partial = workspace.originals / f".incoming-{secrets.token_hex(8)}"
    try:
        with source.open("rb") as reader, partial.open("wb") as writer:
            while chunk := reader.read(1 << 20):
                digest.update(chunk)
                writer.write(chunk)
        folder = workspace.original_folder(digest.hexdigest())
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


def _keep_named_originals(input_root: Path, workspace: Workspace, names: Sequence[str]) -> list[str]:
    """Keep (privately) the images a rejected row names, where they resolve safely; return their digests."""
    kept: list[str] = []
    for name in names:
        try:
            kept.append(keep_original(workspace, resolve_image_path(input_root, name))[0])
        except InputError:
            continue
    return kept


def _is_finished(status: Status, reasons: Sequence[str], staged_name: str | None, workspace: Workspace) -> bool:
    """Whether a registered image needs no processing: its result is recorded and its candidate on disk."""
    if reasons == (NOT_PROCESSED,):
        return False
    if status is Status.OK:
        return staged_name is not None and (workspace.staged_images / staged_name).exists()
    if status is Status.HELD and staged_name is not None:
        return (workspace.held / staged_name).exists()
    return True
