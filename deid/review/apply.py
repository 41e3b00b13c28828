"""Act on review decisions: fill the queue from the ledger, render previews, apply what reviewers decided.

The review page only records decisions (:mod:`deid.review.store`);
:func:`apply_decisions` (the ``review`` flow, ``deid review apply``) carries
them out. An approved image is re-rendered from its ORIGINAL with the
reviewer's boxes through :func:`deid.staging.stage_candidate` (render, encode
fresh, verify bytes, atomic write), staged as releasable and recorded in the
ledger with actor ``review:<name>``; an excluded one is removed from
``staged/`` and ``held/`` by :func:`deid.staging.exclude_candidate` and is
never releasable. An image whose case is still held stays held after its image
review: a case hold is lifted only by the case's own item.
"""

from __future__ import annotations

import io
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from threading import Lock

import numpy as np
from PIL import Image

from deid.config import Config
from deid.crop import Crop, plan_crop
from deid.detect import make_detection_copy
from deid.errors import DeidError
from deid.io import load_image
from deid.ledger import Ledger
from deid.redact import render_decision
from deid.release import write_manifest
from deid.review.queue import (
    CASE_CODES,
    ERROR_CODES,
    ItemState,
    RegionMode,
    ReviewItem,
    ReviewRegion,
    is_derived_case_reason,
    is_image_hold,
    plan_items,
    reason_code,
)
from deid.review.store import ReviewStore
from deid.staging import exclude_candidate, stage_candidate
from deid.types import Action, Decision, ImageRecord, RGBImage, Status
from deid.workspace import Workspace

logger = logging.getLogger(__name__)

APPLY_ACTOR = "review-apply"


@dataclass(frozen=True, slots=True)
class AppliedItem:
    """What applying one decision did."""

    item_id: str
    subject: str
    outcome: str  # "staged", "held", "excluded", "unchanged", "failed"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ApplySummary:
    """What :func:`apply_decisions` did."""

    applied: tuple[AppliedItem, ...]

    def count(self, outcome: str) -> int:
        """How many items ended with ``outcome``."""
        return sum(item.outcome == outcome for item in self.applied)

    def to_json(self) -> dict[str, object]:
        """JSON form."""
        outcomes = ("staged", "held", "excluded", "unchanged", "failed")
        return {
            "counts": {outcome: self.count(outcome) for outcome in outcomes},
            "items": [{"id": a.item_id, "outcome": a.outcome, "detail": a.detail} for a in self.applied],
        }


def sync_queue(ledger: Ledger, store: ReviewStore, config: Config) -> int:
    """Queue every held image and case (routed by reason) and the audit sample; return how many were new."""
    records = ledger.images()
    decisions = {
        image_id: recorded.decision
        for image_id, recorded in ledger.latest_decisions([r.image_id for r in records]).items()
    }
    planned = plan_items(
        records, decisions, ledger.contribution_statuses(), ledger.cases(), audit_share=config.review.audit_share
    )
    added = store.add_items(planned)
    logger.info("review queue: %d new item(s)", added)
    return added


def reviewed_decision(regions: Sequence[ReviewRegion], config: Config, shape: Sequence[int], actor: str) -> Decision:
    """The :class:`Decision` a reviewer's boxes make: fill the redact boxes, crop away the crop boxes.

    Dismissed boxes are not applied. Crop boxes are cut away by the crop
    planner; when no crop fits they are filled instead (never left visible).
    """
    live = [r for r in regions if not r.dismissed]
    redact = tuple(r.region for r in live if r.mode is RegionMode.REDACT)
    crop = tuple(r.region for r in live if r.mode is RegionMode.CROP)
    reason = f"{actor}: approved with {len(live)} box(es)"
    if crop:
        obstacles = [config.policy.padded_box(region, shape) for region in crop]
        plan = plan_crop(shape, obstacles, config.policy.crop)
        if isinstance(plan, Crop):
            return Decision(
                Action.CROP, (*crop, *redact), (reason, f"{actor}: crop {plan.box.to_xywh()}"), crop=plan.box
            )
        return Decision(Action.REDACT, (*crop, *redact), (reason, f"{actor}: no crop fits ({plan.reason}); filled"))
    if redact:
        return Decision(Action.REDACT, redact, (reason,))
    return Decision(Action.KEEP, (), (reason,))


class OriginalCache:
    """The last few decoded originals, by digest: re-rendering after every edit decodes once."""

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._items: OrderedDict[str, RGBImage] = OrderedDict()
        self._lock = Lock()

    def load(self, workspace: Workspace, record: ImageRecord, config: Config) -> RGBImage:
        """Upright pixels of an image's original (from ``originals/``, by the ledger's digest).

        Raises
        ------
        DeidError
            If the original is missing or cannot be decoded.
        """
        with self._lock:
            if record.sha256 in self._items:
                self._items.move_to_end(record.sha256)
                return self._items[record.sha256]
        pixels = load_image(workspace.original_path(record.sha256), config.input).pixels
        with self._lock:
            self._items[record.sha256] = pixels
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return pixels


def encode_preview(pixels: RGBImage, *, side_px: int) -> bytes:
    """A PNG at most ``side_px`` long for the review page (private; never released)."""
    small, _ = make_detection_copy(pixels, max_side_px=side_px)
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(small)).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def render_candidate(pixels: RGBImage, regions: Sequence[ReviewRegion], config: Config, actor: str) -> RGBImage:
    """The candidate as it would be released with these boxes, rendered from the original pixels."""
    return render_decision(pixels, reviewed_decision(regions, config, pixels.shape, actor), config.policy)


def machine_decision_regions(ledger: Ledger, image_id: str) -> tuple[ReviewRegion, ...]:
    """The latest recorded decision's regions (what the candidate on disk applies)."""
    recorded = ledger.latest_decision(image_id)
    return tuple(ReviewRegion(r) for r in recorded.decision.regions) if recorded else ()


def apply_decisions(workspace: Workspace, ledger: Ledger, store: ReviewStore, config: Config) -> ApplySummary:
    """Carry out every decided, not yet applied, review decision.

    Never raises for one item: a failure (missing original, verification)
    leaves that item unapplied and its image held, names the error, and the
    others go on.
    """
    done: list[AppliedItem] = []
    cache = OriginalCache(size=1)
    for item in store.decided_unapplied():
        try:
            outcome, detail = _apply_one(workspace, ledger, item, config, cache)
        except DeidError as error:
            logger.warning("review item %s not applied: %s", item.item_id, error.code)
            done.append(AppliedItem(item.item_id, item.subject, "failed", error.reason))
            continue
        store.mark_applied(item, actor=APPLY_ACTOR, detail={"outcome": outcome, "detail": detail})
        logger.info("applied review item %s: %s", item.item_id, outcome)
        done.append(AppliedItem(item.item_id, item.subject, outcome, detail))
    if any(a.outcome in ("staged", "excluded", "held") for a in done):
        write_manifest(workspace.staged)  # staged/ changed: its manifest must list what is there now
    return ApplySummary(tuple(done))


def _apply_one(
    workspace: Workspace, ledger: Ledger, item: ReviewItem, config: Config, cache: OriginalCache
) -> tuple[str, str]:
    assert item.decision is not None and item.decided_by is not None  # decided_unapplied() returns decided items
    actor = f"review:{item.decided_by}"
    if item.subject_type == "case":
        if item.state is ItemState.EXCLUDED:
            return _exclude_case(workspace, ledger, item, actor)
        return _approve_case(workspace, ledger, item, config, actor, cache)
    record = ledger.image(item.subject)
    if item.state is ItemState.EXCLUDED:
        _exclude_image(workspace, ledger, record, f"{actor}: excluded ({item.decision.reason})", actor)
        return "excluded", item.decision.reason
    if item.audit and _same_boxes(item.decision.regions, machine_decision_regions(ledger, record.image_id)):
        ledger.add_event(record.image_id, "review_audit_confirmed", actor=actor, detail={"item": item.item_id})
        return "unchanged", "audit: the machine's decision confirmed"
    return _stage_image(workspace, ledger, record, item.decision.regions, config, actor, cache)


def _same_boxes(chosen: Sequence[ReviewRegion], machine: Sequence[ReviewRegion]) -> bool:
    live = sorted((r.region.kind, r.region.box, r.mode) for r in chosen if not r.dismissed)
    return live == sorted((r.region.kind, r.region.box, r.mode) for r in machine)


def _case_reasons(ledger: Ledger, contribution_id: str) -> tuple[str, ...]:
    """The reasons a case is held for on its own (not merely because its images were held)."""
    status = ledger.contribution_status(contribution_id)
    if status is None or status[0] is not Status.HELD:
        return ()
    return tuple(reason for reason in status[1] if not is_derived_case_reason(reason))


def _stage_image(
    workspace: Workspace,
    ledger: Ledger,
    record: ImageRecord,
    regions: Sequence[ReviewRegion],
    config: Config,
    actor: str,
    cache: OriginalCache,
) -> tuple[str, str]:
    """Re-render from the original with these boxes; stage it (held again while its case is held)."""
    pixels = cache.load(workspace, record, config)
    decision = reviewed_decision(regions, config, pixels.shape, actor)
    case_held = _case_reasons(ledger, record.contribution_id)
    status = Status.HELD if case_held else Status.OK
    path = workspace.original_path(record.sha256)
    staged = stage_candidate(workspace, record.image_id, pixels, decision, config, status=status, path=path)
    found = ledger.image_details(record.image_id).regions  # the detectors' boxes stay beside the reviewer's
    reasons = (*decision.reasons, *case_held)
    ledger.record_result(
        record.image_id,
        status=status,
        reasons=reasons,
        actor=actor,
        decision=decision,
        found=found,
        staged_name=staged.name,
        staged_sha256=staged.sha256,
        skin_tone=staged.skin_tone.to_json() if staged.skin_tone is not None else None,
    )
    if status is Status.HELD:
        return "held", "image approved; its case is still held"
    current = ledger.contribution_status(record.contribution_id)
    if current is not None and current[0] is Status.HELD:  # held only because no image of it was released
        ledger.set_contribution_status(
            record.contribution_id, Status.OK, [f"{actor}: an image was approved"], actor=actor
        )
    return "staged", f"{decision.action} with {len(decision.regions)} region(s)"


def _exclude_image(workspace: Workspace, ledger: Ledger, record: ImageRecord, reason: str, actor: str) -> None:
    if record.staged_name:
        exclude_candidate(workspace, record.staged_name)
    ledger.set_image_status(record.image_id, Status.EXCLUDED, [reason], actor=actor)


def _exclude_case(workspace: Workspace, ledger: Ledger, item: ReviewItem, actor: str) -> tuple[str, str]:
    assert item.decision is not None
    reason = f"{actor}: case excluded ({item.decision.reason})"
    for record in ledger.images(contribution_id=item.subject):
        if record.status is not Status.EXCLUDED:
            _exclude_image(workspace, ledger, record, reason, actor)
    ledger.set_contribution_status(item.subject, Status.EXCLUDED, [reason], actor=actor)
    return "excluded", item.decision.reason


def _approve_case(
    workspace: Workspace, ledger: Ledger, item: ReviewItem, config: Config, actor: str, cache: OriginalCache
) -> tuple[str, str]:
    """Lift a case hold; re-stage the images that were held only for the case, with their proposals.

    An image held for its own reasons (a face in the review band, …) keeps
    waiting for its own item; an image already approved on its own is staged.
    """
    ledger.set_contribution_status(item.subject, Status.OK, [f"{actor}: case hold lifted"], actor=actor)
    staged = 0
    for record in ledger.images(contribution_id=item.subject):
        if record.status is not Status.HELD or record.staged_name is None:
            continue
        codes = [reason_code(reason) for reason in record.reasons]
        blocking = [code for code in codes if code not in CASE_CODES and (is_image_hold(code) or code in ERROR_CODES)]
        recorded = ledger.latest_decision(record.image_id)
        approved_alone = recorded is not None and recorded.actor.startswith("review:")
        if blocking and not approved_alone:
            continue
        regions = tuple(ReviewRegion(r) for r in recorded.decision.regions) if recorded else ()
        _stage_image(workspace, ledger, record, regions, config, actor, cache)
        staged += 1
    return "staged", f"case hold lifted; {staged} image(s) staged"


__all__ = [
    "APPLY_ACTOR",
    "AppliedItem",
    "ApplySummary",
    "OriginalCache",
    "apply_decisions",
    "encode_preview",
    "machine_decision_regions",
    "render_candidate",
    "reviewed_decision",
    "sync_queue",
]
