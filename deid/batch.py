"""Finish a batch once every image is recorded: duplicates, the case table, withholding, the summary.

:func:`finish_batch` reads the ledger once (a snapshot of this batch's
contributions, images and statuses), then:

1. excludes byte-identical copies within the batch (the first is kept);
2. clusters near-identical images, and hits on earlier releases, keeping one;
3. builds the k-anonymous SCIN case table from the cases the ledger holds
   (never re-reading the input folder), counting earlier releases' rows;
4. withholds the images of every case the demographics step holds or
   suppresses (their candidates move back to ``held/``), so ``staged/``
   holds exactly the images its ``cases.csv`` names;
5. writes ``staged/cases.csv`` and ``staged/manifest.json``.

Deterministic: the same ledger gives byte-identical staged files, so a rerun
changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from deid.config import Config
from deid.demographics import AnonymityReport, build_release_table, write_release_csv
from deid.ingest import IngestProblem, IngestResult
from deid.ledger import Ledger, RecordedDecision
from deid.match import Fingerprints, cluster_duplicates
from deid.release import earlier_release_rows, open_release_index, write_manifest
from deid.staging import exclude_candidate, hold_candidate, sweep_partial_writes
from deid.types import Action, Case, ImageRecord, Status
from deid.workspace import CASES_FILE, Workspace

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SummaryItem:
    """One image's line in a batch summary (the curator's own file name is allowed here; no case data)."""

    image_id: str
    contribution_id: str
    original_name: str
    status: Status
    action: Action | None
    reasons: tuple[str, ...]
    output: str | None
    proposal: str = ""

    def to_json(self) -> dict[str, object]:
        """JSON form for ``deid run --json``."""
        return {
            "image_id": self.image_id,
            "contribution_id": self.contribution_id,
            "original_name": self.original_name,
            "status": str(self.status),
            "action": str(self.action) if self.action else None,
            "reasons": list(self.reasons),
            "output": self.output,
            "proposal": self.proposal,
        }


@dataclass(frozen=True, slots=True)
class PublicCopy:
    """An image excluded because a public copy of it was found."""

    image_id: str
    original_name: str
    evidence: str

    def to_json(self) -> dict[str, object]:
        """JSON form for ``deid run --json``."""
        return {"image_id": self.image_id, "original_name": self.original_name, "evidence": self.evidence}


@dataclass(frozen=True, slots=True)
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
    items: tuple[SummaryItem, ...] = ()
    problems: tuple[IngestProblem, ...] = ()
    anonymity: AnonymityReport | None = None
    public_copies: tuple[PublicCopy, ...] = ()
    stage_seconds: tuple[tuple[str, float], ...] = ()
    """Seconds per stage summed over the images this run processed (worker time, not wall time)."""

    def to_json(self) -> dict[str, object]:
        """JSON form for ``deid run --json``."""
        return {
            "batch": self.batch,
            "stage_seconds": {stage: round(seconds, 3) for stage, seconds in self.stage_seconds},
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
            "items": [item.to_json() for item in self.items],
            "problems": [{"where": p.where, "problem": p.problem} for p in self.problems],
            "public_copies": [copy.to_json() for copy in self.public_copies],
            "anonymity": self.anonymity.to_json() if self.anonymity is not None else {},
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
            if item.status is not Status.OK or item.action in (Action.REDACT, Action.CROP):
                why = "; ".join(item.reasons[:3])
                action = f" {item.action}" if item.status is Status.OK and item.action else ""
                proposal = f" [{item.proposal}]" if item.proposal else ""
                lines.append(f"  - {item.original_name}: {item.status}{action} ({why}){proposal}")
        for copy in self.public_copies:
            lines.append(f"  public copy excluded: {copy.original_name} ({copy.evidence})")
        for problem in self.problems:
            lines.append(f"  ! {problem.where}: {problem.problem}")
        if self.anonymity is not None:
            lines.append(
                f"  k-anonymity: k={self.anonymity.k_achieved} (target {self.anonymity.k_target}), "
                f"information loss {self.anonymity.information_loss}"
            )
        if self.stage_seconds:
            total = sum(seconds for _, seconds in self.stage_seconds) or 1.0
            shares = ", ".join(
                f"{stage} {seconds:.1f}s ({seconds / total:.0%})" for stage, seconds in self.stage_seconds
            )
            lines.append(f"  time per stage:     {shares}")
        lines.append(f"staged output: {Path(self.workspace) / 'staged'}")
        return "\n".join(lines)


@dataclass(slots=True)
class _Snapshot:
    """This batch's state read from the ledger once; kept current as the batch steps change it."""

    cases: dict[str, Case]
    images: dict[str, list[ImageRecord]] = field(default_factory=dict)

    def all_images(self) -> list[ImageRecord]:
        return [record for cid in self.cases for record in self.images.get(cid, [])]

    def update(self, record: ImageRecord) -> None:
        listed = self.images[record.contribution_id]
        listed[:] = [record if r.image_id == record.image_id else r for r in listed]


def finish_batch(
    workspace: Workspace,
    ledger: Ledger,
    config: Config,
    ingest: IngestResult,
    *,
    stage_seconds: Sequence[tuple[str, float]] = (),
) -> BatchSummary:
    """Collapse duplicates, build the k-anonymous case table, write ``cases.csv`` and ``manifest.json``.

    A contribution the demographics step holds (under age, no case id) or
    suppresses (k-anonymity) has its staged images moved back to ``held/``,
    so ``staged/`` holds exactly the images its ``cases.csv`` names.

    Parameters
    ----------
    workspace, ledger, config
        The run's workspace, its ledger and configuration.
    ingest
        What :func:`deid.ingest.ingest_batch` registered (the batch's contributions).
    stage_seconds
        Seconds per processing stage summed over this run's images, for the summary.

    Returns
    -------
    BatchSummary
        Counts, per-image lines, problems, public copies and the anonymity report.

    Raises
    ------
    LedgerError
        If the ledger cannot be read or written.
    DeidError
        If ``cases.csv`` or the manifest cannot be written.
    """
    sweep_partial_writes(workspace)
    snapshot = _Snapshot(ledger.cases(ingest.contribution_ids))
    for record in ledger.images_of(list(snapshot.cases)):
        snapshot.images.setdefault(record.contribution_id, []).append(record)
    _exclude_exact_duplicates(ledger, workspace, snapshot)
    _exclude_near_duplicates(ledger, workspace, snapshot, config)
    image_paths = {
        cid: [
            (f"images/{r.staged_name}", r.shot_type or "")
            for r in snapshot.images.get(cid, [])
            if r.status is Status.OK and r.staged_name
        ]
        for cid in snapshot.cases
    }
    table = build_release_table(
        list(snapshot.cases.values()),
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
    statuses = ledger.contribution_statuses()
    for contribution_id, reason in withheld.items():
        _withhold_case(ledger, workspace, snapshot, contribution_id, reason, statuses.get(contribution_id))
    write_release_csv(table, workspace.staged / CASES_FILE, include_earlier=False)
    write_manifest(workspace.staged)
    held_ids = [r.image_id for r in snapshot.all_images() if r.status is Status.HELD]
    summary = _summarise(ingest, workspace, snapshot, ledger.latest_decisions(held_ids), len(table.rows), table.report)
    return replace(summary, stage_seconds=tuple(stage_seconds))


def _withhold_case(
    ledger: Ledger,
    workspace: Workspace,
    snapshot: _Snapshot,
    contribution_id: str,
    reason: str,
    current: tuple[Status, tuple[str, ...]] | None,
) -> None:
    """Move a withheld case's staged images to ``held/`` and record why (after any earlier reason)."""
    earlier = current[1] if current is not None and current[0] is Status.HELD else ()
    reasons = tuple(dict.fromkeys((*earlier, reason)))
    if current != (Status.HELD, reasons):
        ledger.set_contribution_status(contribution_id, Status.HELD, reasons, actor="demographics")
    for record in snapshot.images.get(contribution_id, []):
        if record.status is Status.OK and record.staged_name:
            hold_candidate(workspace, record.staged_name)
            ledger.set_image_status(record.image_id, Status.HELD, [reason], actor="demographics")
            snapshot.update(replace(record, status=Status.HELD, reasons=(reason,)))


def _exclude_exact_duplicates(ledger: Ledger, workspace: Workspace, snapshot: _Snapshot) -> None:
    """Within the batch, keep the first copy of byte-identical images; exclude the rest.

    An excluded copy's candidate file is removed from ``staged/`` and ``held/``;
    its original stays in ``originals/``.
    """
    first_seen: dict[str, str] = {}
    for record in snapshot.all_images():
        keeper = first_seen.setdefault(record.sha256, record.image_id)
        if keeper != record.image_id and record.status is not Status.EXCLUDED:
            _exclude(ledger, workspace, snapshot, record, f"duplicate: same bytes as image {keeper}")


def _exclude_near_duplicates(ledger: Ledger, workspace: Workspace, snapshot: _Snapshot, config: Config) -> None:
    """Cluster the batch's near-identical images (and hits on earlier releases); keep one per cluster."""
    candidates = {r.image_id: r for r in snapshot.all_images() if r.status is not Status.EXCLUDED}
    stored = ledger.fingerprints_of(list(candidates))
    items = {image_id: Fingerprints.from_json(stored[image_id]) for image_id in candidates if image_id in stored}
    released = open_release_index(workspace)
    for cluster in cluster_duplicates(items, config.match, release_index=released):
        links = dict(cluster.matches)
        for image_id in cluster.excluded:
            link = links.get(image_id)
            distance = f" at {link.distance:g} bits" if link is not None else ""
            where = "an image of an earlier release" if cluster.released else f"image {cluster.kept}"
            _exclude(
                ledger, workspace, snapshot, candidates[image_id], f"duplicate: near-identical to {where}{distance}"
            )


def _exclude(ledger: Ledger, workspace: Workspace, snapshot: _Snapshot, record: ImageRecord, reason: str) -> None:
    """Exclude an image: drop its candidate file (the original stays in originals/) and record why."""
    if record.staged_name:
        exclude_candidate(workspace, record.staged_name)
    ledger.set_image_status(record.image_id, Status.EXCLUDED, [reason], actor="dedup")
    snapshot.update(replace(record, status=Status.EXCLUDED, reasons=(reason,)))


def _summarise(
    ingest: IngestResult,
    workspace: Workspace,
    snapshot: _Snapshot,
    decisions: Mapping[str, RecordedDecision],
    rows: int,
    anonymity: AnonymityReport,
) -> BatchSummary:
    items: list[SummaryItem] = []
    copies: list[PublicCopy] = []
    counts = {Status.OK: 0, Status.HELD: 0, Status.EXCLUDED: 0}
    redacted = cropped = 0
    for record in snapshot.all_images():
        proposal = _proposal(decisions.get(record.image_id)) if record.status is Status.HELD else ""
        items.append(
            SummaryItem(
                record.image_id,
                record.contribution_id,
                record.original_name,
                record.status,
                record.action,
                record.reasons,
                record.staged_name,
                proposal,
            )
        )
        public = [reason for reason in record.reasons if reason.startswith("match.public_copy")]
        if public:
            copies.append(PublicCopy(record.image_id, record.original_name, public[0]))
        counts[record.status] += 1
        redacted += record.status is Status.OK and record.action is Action.REDACT
        cropped += record.status is Status.OK and record.action is Action.CROP
    return BatchSummary(
        batch=ingest.batch,
        workspace=str(workspace.root),
        images_in=len(items),
        released=counts[Status.OK],
        redacted=redacted,
        cropped=cropped,
        held=counts[Status.HELD],
        excluded=counts[Status.EXCLUDED],
        cases_staged=rows,
        cases_held=len(snapshot.cases) - rows + len(ingest.problems),
        items=tuple(items),
        problems=ingest.problems,
        anonymity=anonymity,
        public_copies=tuple(copies),
    )


def _proposal(recorded: RecordedDecision | None) -> str:
    """What the held candidate already does, in words: ``redacts face 0.93, text 0.75``."""
    if recorded is None or not recorded.decision.regions:
        return ""
    listed = ", ".join(f"{region.kind} {region.score:.2f}" for region in recorded.decision.regions)
    return f"the held candidate redacts {listed}"
