"""The review queue, pure: what an item is, how it is routed, how it is filtered and decided.

No I/O here. :func:`plan_items` turns typed ledger reads (image records, their
latest decisions, contribution statuses and cases) into :class:`QueueCandidate`
items; :mod:`deid.review.store` keeps them and :mod:`deid.review.apply` acts
on the decisions.

Routing by reason, because half of what is held cannot be fixed by drawing boxes:

- ``image``: a region in its review band, a kind whose rule is ``hold``, a
  borderline public match, or an audit sample of a machine-released image;
- ``case``: a k-anonymity suppression, an under-age contributor, a held
  self-reported body part: a case view with its images;
- ``exclude_only``: an unreadable or refused file, or a ``cases.csv`` row that
  could not be parsed: nothing to approve, only exclude, with the named error.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from deid.types import Box, Case, Decision, ImageRecord, Region, RegionKind, Status

KIND_KEYS: tuple[RegionKind, ...] = (
    RegionKind.FACE,
    RegionKind.TEXT,
    RegionKind.TATTOO,
    RegionKind.PERSON,
    RegionKind.SENSITIVE_BODY,
)
"""Region kinds in the order of the 1-5 keys of the image view."""

ERROR_CODES = frozenset(
    {
        "unreadable_image",
        "unsupported_format",
        "invalid_case_row",
        "input_error",
        "internal_error",
        "verification_failed",
        "output_error",
        "detector_error",
        "deid_error",
    }
)
"""Reason codes of files deid could not read or refused: such items can only be excluded."""

CASE_CODES = frozenset({"case_held", "case_suppressed", "body_part_held"})
"""Reason codes decided for the whole case, never from an image view."""

ADMIN_CODES = frozenset({"case_held", "case_suppressed"})
"""Case holds only an admin may approve (under-age, k-anonymity): a reviewer may only exclude them."""

DERIVED_CASE_HOLDS = ("case held: no_released_images",)
"""Case holds that follow from the case's image holds: they lift when an image is released, not by a decision."""

MAX_NOTE_CHARS = 200


def is_derived_case_reason(reason: str) -> bool:
    """True for a case hold that only says its images are held (no person decides it on its own)."""
    return reason.startswith(DERIVED_CASE_HOLDS)


class Route(enum.StrEnum):
    """Which view an item opens in."""

    IMAGE = "image"
    CASE = "case"
    EXCLUDE_ONLY = "exclude_only"


class ItemState(enum.StrEnum):
    """Where an item stands."""

    PENDING = "pending"
    APPROVED = "approved"
    EXCLUDED = "excluded"


class Verdict(enum.StrEnum):
    """What a reviewer decided."""

    APPROVE = "approve"
    EXCLUDE = "exclude"


class RegionMode(enum.StrEnum):
    """What a reviewer's region does to the released image."""

    REDACT = "redact"
    CROP = "crop"


@dataclass(frozen=True, slots=True)
class ReviewRegion:
    """A box on the review page: a region, what it does, and whether the reviewer dismissed it.

    A dismissed region ("not a face") stays in the record, so the audit trail
    and the calibration see the reviewer's "nothing there"; it is not filled.
    """

    region: Region
    mode: RegionMode = RegionMode.REDACT
    dismissed: bool = False

    def to_json(self) -> dict[str, object]:
        """JSON form (box as ``[x, y, w, h]``)."""
        return {**self.region.to_json(), "mode": str(self.mode), "dismissed": self.dismissed}

    @classmethod
    def from_json(cls, data: object, *, shape: Sequence[int] | None = None, source: str = "") -> ReviewRegion:
        """Read a region sent by the page or the CLI, checking every field.

        Parameters
        ----------
        data
            ``{"kind", "box": [x, y, w, h], "score"?, "source"?, "note"?, "calibration"?, "raw_score"?,
            "mode"?, "dismissed"?}``.
        shape
            ``(height, width)`` of the upright image: the box is clipped to it
            and must keep at least one pixel.
        source
            Used when ``data`` names none (``review:<name>`` for a drawn box).

        Raises
        ------
        ValueError
            If a field is missing, of the wrong type or out of range.
        """
        if not isinstance(data, Mapping):
            raise ValueError("a region is an object")
        box = data.get("box")
        if not (isinstance(box, list | tuple) and len(box) == 4):
            raise ValueError("a region box is [x, y, w, h]")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box):
            raise ValueError("a region box holds numbers")
        x, y, w, h = (float(v) for v in box)
        if not all(abs(v) < 1e6 for v in (x, y, w, h)) or w <= 0 or h <= 0:
            raise ValueError("a region box needs a positive width and height")
        try:
            kind = RegionKind(str(data.get("kind", "")))
            mode = RegionMode(str(data.get("mode", RegionMode.REDACT)))
        except ValueError as error:
            raise ValueError(f"unknown region kind or mode: {error}") from None
        score = data.get("score", 1.0)
        if not isinstance(score, int | float) or isinstance(score, bool) or not 0.0 <= float(score) <= 1.0:
            raise ValueError("a region score is a number in 0..1")
        parsed = Box.from_xywh(x, y, w, h)
        if shape is not None:
            parsed = parsed.clip(shape)
            if parsed.is_empty:
                raise ValueError("a region box lies outside the image")
        note = str(data.get("note", ""))[:MAX_NOTE_CHARS]
        given_source = str(data.get("source") or source or "review")[:200]
        # A model box keeps its provenance through the page and back (the page echoes what it was sent).
        calibration, raw_score = Region.provenance_from_json(data)
        region = Region(kind, parsed, float(score), given_source, note, calibration, raw_score)
        return cls(region, mode, bool(data.get("dismissed", False)))


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    """A reviewer's decision on one item, as recorded (and later applied)."""

    verdict: Verdict
    view: Route
    regions: tuple[ReviewRegion, ...] = ()
    reason: str = ""
    comment: str = ""

    def to_json(self) -> dict[str, object]:
        """JSON form."""
        return {
            "verdict": str(self.verdict),
            "view": str(self.view),
            "regions": [region.to_json() for region in self.regions],
            "reason": self.reason,
            "comment": self.comment,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReviewDecision:
        """Read :meth:`to_json`'s form back.

        Raises
        ------
        ValueError
            If a field is missing or invalid.
        """
        return cls(
            Verdict(str(data["verdict"])),
            Route(str(data["view"])),
            tuple(ReviewRegion.from_json(r) for r in data.get("regions") or ()),
            str(data.get("reason", "")),
            str(data.get("comment", "")),
        )


@dataclass(frozen=True, slots=True)
class QueueCandidate:
    """An item to put in the queue (what :func:`plan_items` finds held or sampled)."""

    subject_type: str  # "image" or "case"
    subject: str  # image id or contribution id
    route: Route
    reason_code: str
    reasons: tuple[str, ...]
    contribution_id: str
    audit: bool = False
    kinds: tuple[RegionKind, ...] = ()
    max_score: float = 0.0
    body_parts: tuple[str, ...] = ()
    regions: tuple[ReviewRegion, ...] = ()


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """One stored queue item."""

    seq: int
    item_id: str
    subject_type: str
    subject: str
    route: Route
    audit: bool
    state: ItemState
    reason_code: str
    reasons: tuple[str, ...]
    contribution_id: str
    kinds: tuple[RegionKind, ...]
    max_score: float
    body_parts: tuple[str, ...]
    version: int
    regions: tuple[ReviewRegion, ...]
    model_regions: tuple[ReviewRegion, ...]
    comment: str
    decision: ReviewDecision | None
    decided_by: str | None
    decided_at: datetime | None
    applied_at: datetime | None
    created_at: datetime

    def to_json(self) -> dict[str, object]:
        """JSON form for ``deid review list --json`` and the API."""
        return {
            "id": self.item_id,
            "state": str(self.state),
            "route": str(self.route),
            "audit": self.audit,
            "reason_code": self.reason_code,
            "reasons": list(self.reasons),
            "subject_type": self.subject_type,
            "kinds": [str(kind) for kind in self.kinds],
            "max_score": round(self.max_score, 4),
            "version": self.version,
            "regions": [region.to_json() for region in self.regions],
            "model_regions": [region.to_json() for region in self.model_regions],
            "decision": self.decision.to_json() if self.decision else None,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "applied": self.applied_at is not None,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """Which items to list. Every field is optional; ``state`` defaults to pending."""

    state: ItemState | None = ItemState.PENDING
    reason: str | None = None
    route: Route | None = None
    kind: RegionKind | None = None
    min_score: float | None = None
    max_score: float | None = None
    body_part: str | None = None
    reviewer: str | None = None
    older_than_hours: float | None = None
    audit: bool | None = None


@dataclass(frozen=True, slots=True)
class QueuePage:
    """One page of items and the key of the next page (``None`` on the last)."""

    items: tuple[ReviewItem, ...]
    next_after: int | None


@dataclass(frozen=True, slots=True)
class AuditMiss:
    """Audited images of one kind: how many were audited and how many the machine missed."""

    kind: str
    audited: int
    missed: int

    @property
    def miss_rate(self) -> float:
        """Missed over audited (0 when nothing was audited)."""
        return self.missed / self.audited if self.audited else 0.0


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What the audit sample found."""

    audited: int
    excluded: int
    by_kind: tuple[AuditMiss, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        """JSON form."""
        return {
            "audited": self.audited,
            "excluded_by_reviewer": self.excluded,
            "by_kind": {
                m.kind: {"audited": m.audited, "missed": m.missed, "miss_rate": m.miss_rate} for m in self.by_kind
            },
        }


_REVIEW_BAND = re.compile(r"^(\w+) score [0-9.]+ is below .*needs review")
_RULE = re.compile(r"^(\w+) score [0-9.]+ >= [0-9.]+: .*= (\w+)$")
_CODE = re.compile(r"^([a-z_]+): ")


def reason_code(reason: str) -> str:
    """A short code for a ledger reason, for counting and filtering.

    Examples
    --------
    >>> reason_code("face score 0.35 is below policy.rules.face.min_score 0.50: needs review")
    'face_review_band'
    >>> reason_code("case suppressed: k-anonymity")
    'case_suppressed'
    >>> reason_code("unreadable_image: truncated")
    'unreadable_image'
    """
    if reason.startswith("case held:"):
        return "case_held"
    if reason.startswith("case suppressed:"):
        return "case_suppressed"
    if reason.startswith("self-reported body part"):
        return "body_part_held"
    if reason.startswith("match."):
        return "match_" + reason[len("match.") :].split(":", 1)[0]
    if found := _REVIEW_BAND.match(reason):
        return f"{found.group(1)}_review_band"
    if (found := _RULE.match(reason)) and found.group(2) in ("hold", "exclude"):
        return f"{found.group(1)}_rule_{found.group(2)}"
    if (found := _CODE.match(reason)) and found.group(1) in ERROR_CODES:
        return found.group(1)
    return "other"


def is_image_hold(code: str) -> bool:
    return code.endswith(("_review_band", "_rule_hold")) or code.startswith("match_")


def primary_code(codes: Iterable[str]) -> str:
    """The code an item is counted under: errors first, then case holds, then image holds, else ``other``."""
    listed = list(codes)
    for group in (ERROR_CODES, CASE_CODES):
        for code in listed:
            if code in group:
                return code
    for code in listed:
        if is_image_hold(code):
            return code
    return listed[0] if listed else "other"


def is_audit_sample(image_id: str, share: float) -> bool:
    """Whether a machine-released image enters the audit sample: deterministic per id.

    Examples
    --------
    >>> is_audit_sample("abc", 0.0), is_audit_sample("abc", 1.0)
    (False, True)
    """
    if share <= 0.0:
        return False
    draw = int.from_bytes(hashlib.sha256(f"deid-audit:{image_id}".encode()).digest()[:8], "big") / 2**64
    return draw < share


def _kinds_and_score(regions: Sequence[ReviewRegion]) -> tuple[tuple[RegionKind, ...], float]:
    kinds = tuple(sorted({r.region.kind for r in regions}, key=KIND_KEYS.index))
    return kinds, max((r.region.score for r in regions), default=0.0)


def proposal_regions(decision: Decision | None) -> tuple[ReviewRegion, ...]:
    """The machine's proposal as review boxes: every region its decision redacts, crops away or holds for."""
    if decision is None:
        return ()
    return tuple(ReviewRegion(region) for region in decision.regions)


def plan_items(
    images: Sequence[ImageRecord],
    decisions: Mapping[str, Decision],
    statuses: Mapping[str, tuple[Status, tuple[str, ...]]],
    cases: Mapping[str, Case],
    *,
    audit_share: float,
) -> list[QueueCandidate]:
    """Every item the ledger holds for a person, routed by reason, plus the audit sample.

    Parameters
    ----------
    images
        Every image record.
    decisions
        The latest decision of each image (the machine's proposal).
    statuses
        Every contribution's status and reasons (rejected rows included).
    cases
        The stored case of each contribution (rejected rows have none).
    audit_share
        Share of machine-released images sampled for audit (:func:`is_audit_sample`).

    Returns
    -------
    list[QueueCandidate]
        Image items, then case items, each once.
    """
    planned: list[QueueCandidate] = []
    case_items: dict[str, tuple[str, ...]] = {}
    for cid, (status, reasons) in statuses.items():
        decided = tuple(reason for reason in reasons if not is_derived_case_reason(reason))
        if status is Status.HELD and decided:
            case_items[cid] = decided
    for record in images:
        case = cases.get(record.contribution_id)
        parts = tuple(sorted(case.body_parts)) if case else ()
        regions = proposal_regions(decisions.get(record.image_id))
        kinds, score = _kinds_and_score(regions)
        codes = [reason_code(reason) for reason in record.reasons]
        common = QueueCandidate(
            subject_type="image",
            subject=record.image_id,
            route=Route.IMAGE,
            reason_code="other",
            reasons=record.reasons,
            contribution_id=record.contribution_id,
            kinds=kinds,
            max_score=score,
            body_parts=parts,
            regions=regions,
        )
        if record.status is Status.OK:
            if is_audit_sample(record.image_id, audit_share):
                reasons = ("audit: a sample of the images the machine released on its own", *record.reasons)
                planned.append(replace(common, reason_code="audit", reasons=reasons, audit=True))
            continue
        if record.status is not Status.HELD:
            continue
        if any(code in ERROR_CODES for code in codes) or record.staged_name is None:
            code = primary_code(codes) if any(code in ERROR_CODES for code in codes) else "no_candidate"
            planned.append(replace(common, route=Route.EXCLUDE_ONLY, reason_code=code))
            continue
        # Case-level reasons on the image: the case item decides them.
        case_level = tuple(
            reason
            for reason, code in zip(record.reasons, codes, strict=True)
            if code in CASE_CODES and not is_derived_case_reason(reason)
        )
        if any(is_image_hold(code) for code in codes) or not case_level:
            image_codes = [code for code in codes if code not in CASE_CODES] or codes
            planned.append(replace(common, reason_code=primary_code(image_codes)))
        if case_level:
            earlier = case_items.get(record.contribution_id, ())
            case_items[record.contribution_id] = tuple(dict.fromkeys((*earlier, *case_level)))
    for cid, reasons in sorted(case_items.items()):
        case = cases.get(cid)
        codes = [reason_code(reason) for reason in reasons]
        route = Route.CASE if case is not None else Route.EXCLUDE_ONLY
        planned.append(
            QueueCandidate(
                subject_type="case",
                subject=cid,
                route=route,
                reason_code=primary_code(codes),
                reasons=reasons,
                contribution_id=cid,
                body_parts=tuple(sorted(case.body_parts)) if case else (),
            )
        )
    return planned


def reviewer_decision(
    item: ReviewItem,
    verdict: Verdict,
    *,
    view: Route,
    regions: Sequence[ReviewRegion] | None,
    reason: str,
    comment: str,
    exclude_reasons: Sequence[str],
    role: str,
) -> ReviewDecision:
    """Check a decision against the item's route and the reviewer's role; return what is recorded.

    Raises
    ------
    PermissionError
        If the view does not match the item's route (a case hold from an image
        view), an exclude-only item is approved, or a reviewer approves an
        admin-only case hold.
    ValueError
        If an exclusion has no known reason code.
    """
    if view is not item.route:
        raise PermissionError(
            f"this is a {item.route} item; it is decided in the {item.route} view, not the {view} view"
        )
    if verdict is Verdict.APPROVE:
        if item.route is Route.EXCLUDE_ONLY:
            raise PermissionError("this item can only be excluded: " + (item.reasons[0] if item.reasons else ""))
        if item.route is Route.CASE and item.reason_code in ADMIN_CODES and role != "admin":
            raise PermissionError(f"only an admin may approve a {item.reason_code} hold; exclude it or leave it")
    elif reason not in exclude_reasons:
        raise ValueError(f"an exclusion needs a reason code, one of {', '.join(exclude_reasons)}")
    chosen = tuple(item.regions if regions is None else regions) if item.route is Route.IMAGE else ()
    return ReviewDecision(verdict, view, chosen, reason if verdict is Verdict.EXCLUDE else "", comment[:2000])


def audit_report(items: Iterable[ReviewItem], *, min_iou: float = 0.3) -> AuditReport:
    """Miss rate by kind over decided audit items.

    A reviewer region of a kind that no model region of that kind overlaps
    (IoU at least ``min_iou``) is a miss; an audited image the reviewer
    excluded counts as excluded. Every audited image counts once per kind.
    """
    audited = excluded = 0
    missed: dict[str, int] = dict.fromkeys((str(k) for k in KIND_KEYS), 0)
    for item in items:
        if not item.audit or item.decision is None:
            continue
        audited += 1
        if item.decision.verdict is Verdict.EXCLUDE:
            excluded += 1
            continue
        model = [r.region for r in item.model_regions]
        kinds_missed = {
            str(r.region.kind)
            for r in item.decision.regions
            if not r.dismissed
            and not any(m.kind is r.region.kind and m.box.iou(r.region.box) >= min_iou for m in model)
        }
        for kind in kinds_missed:
            missed[kind] += 1
    return AuditReport(audited, excluded, tuple(AuditMiss(kind, audited, n) for kind, n in missed.items()))


def review_decision_pixels(decision: ReviewDecision) -> tuple[Region, ...]:
    """The regions a reviewer's decision fills (not dismissed)."""
    return tuple(r.region for r in decision.regions if not r.dismissed)
