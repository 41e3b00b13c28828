"""Reviewers' "nothing there" answers, counted and fed back into the calibration tables (issue 17).

The review band should hold what is uncertain, not everything. This module
reads what reviewers answered about the machine's boxes and turns it into

- a report, per kind and per detector: how many regions were held, how many
  a person resolved as nothing there, and by score band the observed share
  of real findings (:func:`feedback_report`);
- a proposal for each calibration table (``[detection.detectors."<name>".calibration]``)
  with enough answers, written as a TOML overlay for a curator to review and
  copy into ``deid.toml`` (:func:`propose_calibration`, :func:`overlay_toml`).
  Nothing here rewrites a configuration.

What a reviewer's answer is (:func:`reviewer_answers`)
------------------------------------------------------
For every model region of a decided image item (``model_regions``, what the
machine proposed) the answer is ``confirmed`` when a box the reviewer kept
(not dismissed, any kind, moved or not) overlaps it (IoU at least ``min_iou``
or covering at least ``min_cover_frac`` of it), or when the image was excluded as
``identifying`` and the box was not dismissed. Otherwise it is
``nothing_there``: dismissed ("not a face"), deleted, or the item approved
with the box removed. Doubt counts as confirmed.

Which score the tables read
---------------------------
A table maps a detector's raw evidence to a probability. Every region a
table scored names it: :attr:`~deid.types.Region.calibration` is the table
and :attr:`~deid.types.Region.raw_score` the detector's value it read (both
kept when the case evidence of :mod:`deid.evidence` lowers the score for the
policy). An answer is placed at that raw value, through the table of the
configuration given (so a batch run under an older table is still read
right), and tables are non-decreasing, so bins are taken on the table's own
output and each bin edge is mapped back to raw through the table's
generalised inverse (:func:`invert_table`: the smallest raw reaching that
probability, exact on strictly increasing segments).

A region recorded by an older deid has neither field. For those only (a
fallback, so existing workspaces still get proposals), the table is told by a
phrase of the note its detector wrote (:data:`TABLE_MARKERS`,
:func:`table_of`), the detector's score is read from the ledger's regions
(before the case evidence) and its raw value recovered through the inverse:
run that with the configuration the batch ran with. Rewording a note changes
nothing for regions recorded with their provenance.

The rule (privacy first, :func:`propose_table`)
------------------------------------------------
The score axis of the table's kind is cut at the policy's ``review_score`` and
``min_score``, the review band into ``bins`` equal parts. Then:

1. **Enough answers.** A bin's answers count only with at least ``min_count``
   of them; its proposed probability is at least the upper end of the 95%
   Wilson score interval of its confirmed share (0 of 20 gives 0.161, 0 of 50
   gives 0.071), fitted across bins with pool-adjacent-violators. A handful
   of answers never changes anything.
2. **Where the bound holds.** By monotonicity (a stronger detection is never
   less likely) a bin's answers bound the probability at the raw value of its
   lowest answer and below: the bound is placed there and lowers only points
   at or below it; above it the table rises linearly to its next point (the
   interpolation every table uses between its measured points).
3. **Redacted stays redacted.** No point whose current probability is at or
   above ``min_score`` is lowered: feedback never turns a redaction into a
   hold or a release.
4. **A real finding keeps its bin held.** In a review-band bin where a
   reviewer confirmed even one finding (whatever the count), no point drops
   below ``review_score``, and by monotonicity neither does anything above it.
5. **Conflicts go up.** The table stays non-decreasing by a running maximum,
   which only raises; probabilities are rounded up to 4 places.

Bins with enough answers whose bound is above the current table are raised to
it (more holds or redactions, never fewer; above ``min_score`` raising changes
no decision, but keeps rule 1 true everywhere). Each bin's bound is a 95%
statement on its own; with many bins one of them may be wrong by chance,
which is why rules 3 and 4 do not rest on the bounds.

``tattoos.ink`` (a Platt slope and offset) and fixed option scores (pose
heads, print-shaped text, people) have no table: they are reported, not
proposed.
"""

from __future__ import annotations

import bisect
import enum
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from deid.config import Config, KindRule, PolicySettings
from deid.ledger import Ledger
from deid.review.queue import ItemState, QueueFilter, ReviewItem, ReviewRegion, Route, Verdict
from deid.review.store import ReviewStore
from deid.types import Region, RegionKind

Points = tuple[tuple[float, float], ...]
"""A calibration table: ``(raw, probability)`` points, raw strictly increasing."""

WILSON_Z = 1.959963984540054
"""The normal quantile of the two-sided 95% Wilson score interval (its upper end is a one-sided 97.5% bound)."""

DEFAULT_MIN_COUNT = 20
DEFAULT_BINS = 4
DEFAULT_MIN_IOU = 0.3
DEFAULT_MIN_COVER_FRAC = 0.5
IDENTIFYING_EXCLUSION = "identifying"
"""The exclusion reason that says the image shows someone: its boxes count as confirmed unless dismissed."""

OVERLAY_HEADER = "# deid review feedback: proposed calibration overlay"
"""The first line of every overlay this module writes (the CLI overwrites only files that start with it)."""

_PROBABILITY_SCALE = 10_000.0  # probabilities are written with 4 decimal places, rounded up
_TOLERANCE = 1e-9


class Answer(enum.StrEnum):
    """What a reviewer's decision says about one model region."""

    CONFIRMED = "confirmed"
    NOTHING_THERE = "nothing_there"


class Zone(enum.StrEnum):
    """Where a score bin lies against its kind's policy rule."""

    BELOW = "below"  # under review_score: ignored by the policy
    BAND = "band"  # the review band: held for a person
    REDACTED = "redacted"  # at or above min_score: the rule's action (redact, crop, hold, exclude)


@dataclass(frozen=True, slots=True)
class TableMarker:
    """How to tell which table scored a region stored without its provenance: its detector and a note phrase.

    Only a fallback for regions recorded before :class:`~deid.types.Region`
    carried ``calibration`` (see the module docstring); the phrases are what
    the detectors wrote then.
    """

    detector: str
    table: str
    phrase: str
    at_start: bool = False

    def matches(self, region: Region) -> bool:
        """True when ``region`` came from this detector and its note carries the phrase."""
        if detector_name(region.source) != self.detector:
            return False
        return region.note.startswith(self.phrase) if self.at_start else self.phrase in region.note


TABLE_MARKERS: tuple[TableMarker, ...] = (
    # deid/detect/faces.py FaceEnsembleDetector._calibrated: "...; seen by <members> (<raw>)"
    TableMarker("faces.ensemble", "agreed", "; seen by mediapipe and CenterFace ("),
    TableMarker("faces.ensemble", "centerface_only", "; seen by CenterFace only ("),
    TableMarker("faces.ensemble", "mediapipe_only", "; seen by mediapipe only ("),
    # deid/detect/body.py NudenetBodyDetector.detect: "NudeNet <label> <raw>, <where> (context <c>)"
    TableMarker("body.nudenet", "in_context", ", on a body (context "),
    TableMarker("body.nudenet", "standalone", ", no body around it (context "),
    # deid/detect/text.py RapidOcrTextDetector.detect: legible text only; unreadable text has fixed scores
    TableMarker("text.rapidocr", "legible", "text read as ", at_start=True),
)
"""The note phrase that named each calibration table before regions carried ``calibration`` (a fallback)."""


def detector_name(source: str) -> str:
    """The registered detector name of a region source (``"faces.ensemble@…"`` -> ``"faces.ensemble"``)."""
    return source.split("@", 1)[0]


def table_of(region: Region) -> str | None:
    """The calibration table that scored ``region``, or ``None`` (no table: an option score, Platt, a reviewer).

    ``region.calibration`` when set; for a region stored before regions
    carried it, the table its note names (:data:`TABLE_MARKERS`).

    Examples
    --------
    >>> from deid.types import Box
    >>> face = Region(RegionKind.FACE, Box(0, 0, 9, 9), 0.3, "faces.ensemble@1", "reworded", "mediapipe_only", 0.75)
    >>> table_of(face), table_of(Region(RegionKind.FACE, Box(0, 0, 9, 9), 1.0, "review:ana"))
    ('mediapipe_only', None)
    """
    if region.calibration is not None:
        return region.calibration
    return next((marker.table for marker in TABLE_MARKERS if marker.matches(region)), None)


def invert_table(points: Sequence[tuple[float, float]], probability: float) -> float | None:
    """The smallest raw value the table maps to at least ``probability``; ``None`` above the table's top.

    Exact where the table strictly increases; on a flat stretch it is the
    stretch's start. At or below the first probability it is the first raw
    value (the table is flat before it).

    Examples
    --------
    >>> round(invert_table(((0.5, 0.1), (0.9, 0.7)), 0.4), 6)
    0.7
    >>> invert_table(((0.5, 0.1), (0.9, 0.7)), 0.05), invert_table(((0.5, 0.1), (0.9, 0.7)), 0.8)
    (0.5, None)
    """
    if probability <= points[0][1]:
        return float(points[0][0])
    for (x0, p0), (x1, p1) in itertools.pairwise(points):
        if p0 < probability <= p1:
            if probability == p1:
                return float(x1)
            return float(x0 + (probability - p0) / (p1 - p0) * (x1 - x0))
    return None


def evaluate_table(points: Sequence[tuple[float, float]], raw: float) -> float:
    """The table's probability at ``raw`` (linear between points, flat beyond the ends), as the detectors read it."""
    return float(np.interp(raw, [x for x, _ in points], [p for _, p in points]))


# what reviewers answered ---------------------------------------------------


def reviewer_answers(
    item: ReviewItem, *, min_iou: float = DEFAULT_MIN_IOU, min_cover_frac: float = DEFAULT_MIN_COVER_FRAC
) -> tuple[tuple[ReviewRegion, Answer], ...]:
    """Each model region of a decided image item with the reviewer's answer (see the module docstring).

    Returns ``()`` for pending items and for items that are not image items.
    A model region is matched to the reviewer's boxes by overlap, not by
    identity: the page keeps a dismissed box as it was, and a moved or
    resized box still overlaps what the model found.
    """
    decision = item.decision
    if decision is None or item.state is ItemState.PENDING or item.route is not Route.IMAGE:
        return ()
    kept = [r.region.box for r in decision.regions if not r.dismissed]
    dismissed = {(r.region.kind, r.region.box, r.region.source) for r in decision.regions if r.dismissed}
    identifying = decision.verdict is Verdict.EXCLUDE and decision.reason == IDENTIFYING_EXCLUSION
    answers: list[tuple[ReviewRegion, Answer]] = []
    for model in item.model_regions:
        box = model.region.box
        overlapped = any(k.iou(box) >= min_iou or k.coverage_of(box) >= min_cover_frac for k in kept)
        was_dismissed = (model.region.kind, box, model.region.source) in dismissed
        confirmed = overlapped or (identifying and not was_dismissed)
        answers.append((model, Answer.CONFIRMED if confirmed else Answer.NOTHING_THERE))
    return tuple(answers)


@dataclass(frozen=True, slots=True)
class RegionOutcome:
    """One model region a person reviewed, and what they answered.

    ``score`` is what the policy acted on (the review item's box). ``table``
    is the region's ``calibration`` and ``raw`` its ``raw_score`` (the
    detector's own value); ``detector_score`` is what the configured table
    gives that raw value, before case evidence. Without a configured table,
    ``table`` and ``raw`` are ``None`` and ``detector_score`` is the
    detector's score. For a region stored without its provenance,
    ``table`` is named by its note, ``detector_score`` is the detector's
    calibrated score from the ledger (the item's score when the ledger has no
    such box) and ``raw`` that score mapped back through ``table``.
    """

    item_id: str
    image_id: str
    kind: RegionKind
    detector: str
    table: str | None
    score: float
    detector_score: float
    raw: float | None
    answer: Answer
    audit: bool

    @property
    def is_confirmed(self) -> bool:
        """True when the reviewer kept the finding."""
        return self.answer is Answer.CONFIRMED


def item_outcomes(
    item: ReviewItem,
    detected: Sequence[Region],
    tables: Mapping[str, Mapping[str, Points]],
    *,
    min_iou: float = DEFAULT_MIN_IOU,
    min_cover_frac: float = DEFAULT_MIN_COVER_FRAC,
) -> tuple[RegionOutcome, ...]:
    """The outcomes of one decided image item.

    Parameters
    ----------
    item
        A review item (pending and non-image items give ``()``).
    detected
        The detectors' regions the ledger recorded for the image (read only
        for regions without ``calibration``).
    tables
        Calibration tables by detector, then table name (the configuration's).
    """
    outcomes: list[RegionOutcome] = []
    for model, answer in reviewer_answers(item, min_iou=min_iou, min_cover_frac=min_cover_frac):
        shown = model.region
        detector = detector_name(shown.source)
        table, raw, detector_score = _reading(shown, detected, tables.get(detector, {}))
        outcomes.append(
            RegionOutcome(
                item_id=item.item_id,
                image_id=item.subject,
                kind=shown.kind,
                detector=detector,
                table=table,
                score=float(shown.score),
                detector_score=detector_score,
                raw=raw,
                answer=answer,
                audit=item.audit,
            )
        )
    return tuple(outcomes)


def _reading(
    shown: Region, detected: Sequence[Region], tables: Mapping[str, Points]
) -> tuple[str | None, float | None, float]:
    """``(table, raw, detector score)`` of a reviewed region, by :class:`RegionOutcome`'s rules.

    ``tables`` are the detector's. A region without ``calibration`` is looked
    up among the ledger's ``detected`` regions (same kind, box and source):
    stored before regions carried their provenance, or scored by no table.
    """
    found = shown
    if shown.calibration is None:
        same = (r for r in detected if r.kind is shown.kind and r.box == shown.box and r.source == shown.source)
        found = next(same, shown)
    if found.calibration is not None and found.raw_score is not None:
        points = tables.get(found.calibration)
        if points is None:
            return None, None, float(found.score)
        return found.calibration, float(found.raw_score), evaluate_table(points, found.raw_score)
    # The fallback for regions stored without their provenance: the note names the table, the inverse the raw.
    table = table_of(found)
    points = tables.get(table) if table is not None else None
    if points is None:
        return None, None, float(found.score)
    return table, invert_table(points, float(found.score)), float(found.score)


def calibration_tables(config: Config) -> dict[str, dict[str, Points]]:
    """Every configured calibration table, by detector and table name."""
    return {
        name: {table: tuple((float(x), float(p)) for x, p in points) for table, points in settings.calibration.items()}
        for name, settings in config.detection.detectors.items()
        if settings.calibration
    }


def read_outcomes(
    store: ReviewStore,
    ledger: Ledger,
    config: Config,
    *,
    min_iou: float = DEFAULT_MIN_IOU,
    min_cover_frac: float = DEFAULT_MIN_COVER_FRAC,
) -> tuple[RegionOutcome, ...]:
    """Every reviewed model region of every decided image item: approved items, then excluded, in queue order.

    Raises
    ------
    LedgerError
        If the ledger cannot be read.
    """
    tables = calibration_tables(config)
    known = {record.image_id for record in ledger.images()}
    outcomes: list[RegionOutcome] = []
    for state in (ItemState.APPROVED, ItemState.EXCLUDED):
        after = 0
        while True:
            page = store.list_items(QueueFilter(state=state, route=Route.IMAGE), after=after, limit=500)
            for item in page.items:
                detected = ledger.image_details(item.subject).regions if item.subject in known else ()
                outcomes.extend(item_outcomes(item, detected, tables, min_iou=min_iou, min_cover_frac=min_cover_frac))
            if page.next_after is None:
                break
            after = page.next_after
    return tuple(outcomes)


# the report ----------------------------------------------------------------


def score_edges(rule: KindRule, *, bins: int = DEFAULT_BINS) -> tuple[float, ...]:
    """Probability edges: 0, ``review_score``, the review band cut in ``bins`` equal parts, ``min_score``, 1.

    Examples
    --------
    >>> from deid.types import Action
    >>> score_edges(KindRule(Action.REDACT, 0.5, 0.3, 0.1), bins=2)
    (0.0, 0.3, 0.4, 0.5, 1.0)
    """
    if bins < 1:
        raise ValueError("bins must be at least 1")
    low, high = rule.review_score, rule.min_score
    inner = [low + (high - low) * i / bins for i in range(bins + 1)] if high > low else [low]
    inner[0], inner[-1] = low, high
    return tuple(sorted({0.0, *inner, 1.0}))


def _bin_of(edges: Sequence[float], score: float) -> int:
    return min(max(bisect.bisect_right(edges, score) - 1, 0), len(edges) - 2)


@dataclass(frozen=True, slots=True)
class ScoreBand:
    """Reviewed regions whose score lies in ``[low, high)`` (the last band includes 1), and how many were real."""

    low: float
    high: float
    reviewed: int
    confirmed: int

    @property
    def confirmed_share(self) -> float:
        """Observed share of real findings (0 when nothing was reviewed)."""
        return self.confirmed / self.reviewed if self.reviewed else 0.0

    def to_json(self) -> dict[str, object]:
        """JSON form."""
        return {
            "low": round(self.low, 4),
            "high": round(self.high, 4),
            "reviewed": self.reviewed,
            "confirmed": self.confirmed,
            "confirmed_share": round(self.confirmed_share, 4),
        }


@dataclass(frozen=True, slots=True)
class GroupFeedback:
    """The answers about one kind, or one detector's regions of one kind.

    ``held`` and ``nothing_there`` count regions of held items; the audit
    sample (machine-released images a person checked) is counted apart.
    ``bands`` cover held regions, by the score the policy acted on.
    """

    name: str
    kind: RegionKind
    held: int
    nothing_there: int
    audited: int
    audited_nothing_there: int
    bands: tuple[ScoreBand, ...]

    @property
    def nothing_there_share(self) -> float:
        """Share of held regions resolved as nothing there (0 when none was held)."""
        return self.nothing_there / self.held if self.held else 0.0

    def to_json(self) -> dict[str, object]:
        """JSON form."""
        return {
            "name": self.name,
            "kind": str(self.kind),
            "held": self.held,
            "nothing_there": self.nothing_there,
            "nothing_there_share": round(self.nothing_there_share, 4),
            "audited": self.audited,
            "audited_nothing_there": self.audited_nothing_there,
            "bands": [band.to_json() for band in self.bands],
        }

    def headline(self) -> str:
        """``faces.ensemble: 40 regions held, 31 nothing there (0.78)``."""
        share = f"{self.nothing_there_share:.2f}"
        line = f"{self.name}: {self.held} regions held, {self.nothing_there} nothing there ({share})"
        if self.audited:
            line += f"; audit sample {self.audited}, {self.audited_nothing_there} nothing there"
        return line


@dataclass(frozen=True, slots=True)
class FeedbackReport:
    """What reviewers answered, per kind and per detector."""

    items: int
    regions: int
    by_kind: tuple[GroupFeedback, ...]
    by_detector: tuple[GroupFeedback, ...]

    def to_json(self) -> dict[str, object]:
        """JSON form (ids, detector names and counts only)."""
        return {
            "decided_items_with_regions": self.items,
            "reviewed_regions": self.regions,
            "by_kind": [group.to_json() for group in self.by_kind],
            "by_detector": [group.to_json() for group in self.by_detector],
        }

    def lines(self) -> list[str]:
        """The report as text lines (no contributor data: names, counts and scores only)."""
        out = [f"review feedback: {self.regions} reviewed model region(s) on {self.items} decided image item(s)"]
        for title, groups in (("by kind", self.by_kind), ("by detector", self.by_detector)):
            out.append(f"{title}:")
            if not groups:
                out.append("  (no reviewed regions)")
            for group in groups:
                out.append(f"  {group.headline()}")
                for band in group.bands:
                    out.append(
                        f"    score {band.low:.3f}-{band.high:.3f}: {band.reviewed:>4} reviewed, "
                        f"{band.confirmed:>4} real ({band.confirmed_share:.2f})"
                    )
        return out


def _group(name: str, kind: RegionKind, outcomes: Sequence[RegionOutcome], edges: Sequence[float]) -> GroupFeedback:
    held = [o for o in outcomes if not o.audit]
    audited = [o for o in outcomes if o.audit]
    reviewed = [0] * (len(edges) - 1)
    confirmed = [0] * (len(edges) - 1)
    for outcome in held:
        index = _bin_of(edges, outcome.score)
        reviewed[index] += 1
        confirmed[index] += outcome.is_confirmed
    bands = tuple(
        ScoreBand(edges[i], edges[i + 1], reviewed[i], confirmed[i]) for i in range(len(edges) - 1) if reviewed[i]
    )
    return GroupFeedback(
        name=name,
        kind=kind,
        held=len(held),
        nothing_there=sum(not o.is_confirmed for o in held),
        audited=len(audited),
        audited_nothing_there=sum(not o.is_confirmed for o in audited),
        bands=bands,
    )


def feedback_report(
    outcomes: Sequence[RegionOutcome], policy: PolicySettings, *, bins: int = DEFAULT_BINS
) -> FeedbackReport:
    """Count the answers per kind and per detector (and kind), with score bands from each kind's policy rule."""
    by_kind: list[GroupFeedback] = []
    for kind in sorted({o.kind for o in outcomes}):
        edges = score_edges(policy.rule_for(kind), bins=bins)
        by_kind.append(_group(str(kind), kind, [o for o in outcomes if o.kind is kind], edges))
    by_detector: list[GroupFeedback] = []
    pairs = sorted({(o.detector, o.kind) for o in outcomes})
    for detector, kind in pairs:
        edges = score_edges(policy.rule_for(kind), bins=bins)
        several = sum(d == detector for d, _ in pairs) > 1
        name = f"{detector} ({kind})" if several else detector
        chosen = [o for o in outcomes if o.detector == detector and o.kind is kind]
        by_detector.append(_group(name, kind, chosen, edges))
    return FeedbackReport(
        items=len({o.item_id for o in outcomes}),
        regions=len(outcomes),
        by_kind=tuple(by_kind),
        by_detector=tuple(by_detector),
    )


# the proposal --------------------------------------------------------------


def wilson_upper(confirmed: int, total: int, *, z: float = WILSON_Z) -> float:
    """Upper end of the Wilson score interval of ``confirmed`` out of ``total`` (1.0 when ``total`` is 0).

    Examples
    --------
    >>> round(wilson_upper(0, 20), 3), round(wilson_upper(0, 50), 3), wilson_upper(3, 3)
    (0.161, 0.071, 1.0)
    """
    if not 0 <= confirmed <= total:
        raise ValueError("need 0 <= confirmed <= total")
    if total == 0:
        return 1.0
    share = confirmed / total
    z2 = z * z
    centre = share + z2 / (2 * total)
    spread = z * math.sqrt(share * (1 - share) / total + z2 / (4 * total * total))
    return min(1.0, (centre + spread) / (1 + z2 / total)) if confirmed < total else 1.0


def isotonic_fit(values: Sequence[float], weights: Sequence[float]) -> tuple[float, ...]:
    """The weighted least-squares non-decreasing fit of ``values`` (pool adjacent violators).

    Examples
    --------
    >>> isotonic_fit([0.1, 0.5, 0.3, 0.8], [1, 1, 1, 1])
    (0.1, 0.4, 0.4, 0.8)
    """
    if len(values) != len(weights):
        raise ValueError("values and weights must have the same length")
    blocks: list[list[float]] = []  # [weighted mean, weight, count]
    for value, weight in zip(values, weights, strict=True):
        if weight <= 0:
            raise ValueError("weights must be positive")
        blocks.append([float(value), float(weight), 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean1, weight1, count1 = blocks.pop()
            mean0, weight0, count0 = blocks.pop()
            total = weight0 + weight1
            blocks.append([(mean0 * weight0 + mean1 * weight1) / total, total, count0 + count1])
    return tuple(mean for mean, _, count in blocks for _ in range(int(count)))


@dataclass(frozen=True, slots=True)
class BinEvidence:
    """One score bin of a table: its answers and what the proposal does at its lower edge.

    ``low``/``high`` are probabilities of the current table, ``raw_low``/``raw_high``
    the raw interval they map back to. ``wilson_upper`` and ``bound_raw`` (the
    raw value of the bin's lowest answer, where the bound is placed) are set
    only when the bin had at least the minimum count of answers; ``current``
    and ``proposed`` are the table's probability at ``bound_raw`` (else at
    ``raw_low``) before and after.
    """

    low: float
    high: float
    raw_low: float
    raw_high: float
    zone: Zone
    reviewed: int
    confirmed: int
    wilson_upper: float | None
    bound_raw: float | None
    current: float
    proposed: float
    note: str

    def to_json(self) -> dict[str, object]:
        """JSON form."""
        return {
            "low": round(self.low, 4),
            "high": round(self.high, 4),
            "raw_low": self.raw_low,
            "raw_high": self.raw_high,
            "zone": str(self.zone),
            "reviewed": self.reviewed,
            "confirmed": self.confirmed,
            "wilson_upper": None if self.wilson_upper is None else round(self.wilson_upper, 4),
            "bound_raw": self.bound_raw,
            "current": round(self.current, 4),
            "proposed": round(self.proposed, 4),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class TableProposal:
    """A proposed replacement for one calibration table, with the evidence behind it."""

    detector: str
    table: str
    kind: RegionKind
    rule: KindRule
    current: Points
    proposed: Points
    bins: tuple[BinEvidence, ...]
    min_count: int

    @property
    def changed(self) -> bool:
        """True when the proposal differs from the current table."""
        return self.proposed != self.current

    @property
    def answered_bins(self) -> int:
        """Bins with at least the minimum count of answers."""
        return sum(b.wilson_upper is not None for b in self.bins)

    def to_json(self) -> dict[str, object]:
        """JSON form."""
        return {
            "detector": self.detector,
            "table": self.table,
            "kind": str(self.kind),
            "review_score": self.rule.review_score,
            "min_score": self.rule.min_score,
            "min_count": self.min_count,
            "changed": self.changed,
            "current": [list(point) for point in self.current],
            "proposed": [list(point) for point in self.proposed],
            "bins": [b.to_json() for b in self.bins],
        }

    def summary(self) -> str:
        """One line: which table, how many bins had enough answers, changed or not."""
        state = "changed" if self.changed else "unchanged"
        answered = self.answered_bins
        return (
            f"{self.detector} {self.table} ({self.kind}): {sum(b.reviewed for b in self.bins)} answers, "
            f"{answered} of {len(self.bins)} bins with >= {self.min_count}: {state}"
        )


def _round_up(probability: float) -> float:
    # round(.., 6) first, so float noise (0.2 * 1e4 = 2000.0000000000002) does not round 0.2 up to 0.2001.
    return min(1.0, max(0.0, math.ceil(round(probability * _PROBABILITY_SCALE, 6)) / _PROBABILITY_SCALE))


def _tidied(points: Sequence[tuple[float, float]]) -> Points:
    """Float noise off every point (0.7374999999999999 -> 0.7375), only ever in the safe direction.

    Raws are rounded down and probabilities up at 1e-9 (after dropping
    noise below 1e-12): moving a point of a non-decreasing table left, or up,
    never lowers it anywhere by more than that noise.
    """
    tidy: dict[float, float] = {}
    for x, p in points:
        raw = math.floor(round(x * 1e9, 3)) / 1e9
        probability = min(1.0, math.ceil(round(p * 1e9, 3)) / 1e9)
        tidy[raw] = max(tidy.get(raw, 0.0), probability)
    return tuple(sorted(tidy.items()))


def _simplified(points: Sequence[tuple[float, float]]) -> Points:
    """Drop points lying on (or just below) the line through their neighbours: the table never goes down."""
    kept = [points[0]]
    for index in range(1, len(points) - 1):
        (x0, p0), (x, p), (x1, p1) = kept[-1], points[index], points[index + 1]
        line = p0 + (p1 - p0) * (x - x0) / (x1 - x0)
        if not 0.0 <= line - p <= _TOLERANCE:  # removing a point at or just below the line only raises
            kept.append(points[index])
    kept.append(points[-1])
    return tuple(kept)


def _zone(low: float, high: float, rule: KindRule) -> Zone:
    if low >= rule.min_score:
        return Zone.REDACTED
    if high <= rule.review_score:
        return Zone.BELOW
    return Zone.BAND


def propose_table(
    points: Sequence[tuple[float, float]],
    answers: Iterable[tuple[float, bool]],
    rule: KindRule,
    *,
    min_count: int = DEFAULT_MIN_COUNT,
    bins: int = DEFAULT_BINS,
) -> tuple[Points, tuple[BinEvidence, ...]]:
    """Propose a table from its answers by the module docstring's rule.

    Parameters
    ----------
    points
        The current table, ``(raw, probability)`` with raw strictly increasing
        and probability non-decreasing (what :mod:`deid.config` accepts).
    answers
        ``(detector score, confirmed)`` per reviewed region the table scored.
    rule
        The policy rule of the table's kind (its review band and redaction threshold).
    min_count
        Answers a bin needs before they count.
    bins
        Equal parts of the review band.

    Returns
    -------
    tuple
        The proposed points (the current ones, unchanged, when no bin has
        enough answers) and the evidence of every bin.

    Raises
    ------
    ValueError
        If ``min_count`` or ``bins`` is below 1 or the table has fewer than two points.
    """
    if min_count < 1:
        raise ValueError("min_count must be at least 1")
    table: Points = tuple((float(x), float(p)) for x, p in points)
    if len(table) < 2:
        raise ValueError("a calibration table has at least two points")
    edges = score_edges(rule, bins=bins)
    count = len(edges) - 1
    last_raw = table[-1][0]
    lows = [invert_table(table, edge) for edge in edges[:-1]]
    # Bins the table reaches with some width; on the flat stretch before the first point several
    # edges map to the first raw value, and the bin holding the first probability is the real one.
    raw_low: dict[int, float] = {}
    raw_high: dict[int, float] = {}
    for index, raw in enumerate(lows):
        if raw is None:
            continue
        following = next((r for r in lows[index + 1 :] if r is not None), None)
        if following is None or following > raw:
            raw_low[index], raw_high[index] = raw, last_raw if following is None else following
    live = sorted(raw_low)
    starts = [raw_low[i] for i in live]
    # Answers are placed by raw value (the generalised inverse of their score, which errs low), so
    # each lands in a bin the table reaches, however close a score lies to a bin edge.
    reviewed, confirmed = [0] * count, [0] * count
    lowest: dict[int, float] = {}  # the lowest answered raw value per bin
    for score, is_confirmed in answers:
        raw = invert_table(table, min(max(float(score), table[0][1]), table[-1][1]))
        assert raw is not None  # the score is clamped into the table's range
        index = live[max(bisect.bisect_right(starts, raw) - 1, 0)]
        reviewed[index] += 1
        confirmed[index] += bool(is_confirmed)
        lowest[index] = min(lowest.get(index, raw), raw)
    data = [i for i in live if reviewed[i] >= min_count]
    bounds = {i: wilson_upper(confirmed[i], reviewed[i]) for i in data}
    shares = isotonic_fit([confirmed[i] / reviewed[i] for i in data], [reviewed[i] for i in data])
    fitted = dict(zip(data, shares, strict=True))
    target = {i: max(bounds[i], fitted[i]) for i in data}
    # Where a bin's bound holds: at its lowest answer's raw value and below (every answer lies at
    # or above it, and a weaker detection is never more likely).
    bound_at = {i: lowest[i] for i in data}
    zones = {i: _zone(edges[i], edges[i + 1], rule) for i in live}

    facts = _BinFacts(edges, live, raw_low, raw_high, zones, reviewed, confirmed, bounds, bound_at, min_count)
    if not data:
        return table, facts.evidence(table, table)

    # Knots: the table's own points, the lower edge of every bin and where each bound holds, each in a known bin.
    knots: dict[float, int] = {}
    for index in live:
        knots[raw_low[index]] = index
    for index, x in bound_at.items():
        knots.setdefault(x, index)
    for x, _ in table:
        knots.setdefault(x, live[max(bisect.bisect_right(starts, x) - 1, 0)])
    ordered = sorted(knots)
    values: list[float] = []
    for x in ordered:
        index = knots[x]
        current = evaluate_table(table, x)
        zone = zones[index]
        # Rule 3, by bin and by point (a redacted zone may be a single point, min_score 1.0), with float slack.
        redacted = zone is Zone.REDACTED or current >= rule.min_score - _TOLERANCE
        floor = current if redacted else 0.0
        if zone is Zone.BAND and confirmed[index] > 0:
            floor = max(floor, rule.review_score)  # rule 4: a confirmed finding keeps its bin held
        if index in target and x == bound_at[index]:
            value = max(floor, target[index])  # rule 1 (and raising)
        else:
            above = [target[i] for i in data if bound_at[i] >= x]  # rule 2: bounds hold at and below their point
            value = max(floor, min(current, *above)) if above else max(floor, current)
        values.append(max(value, values[-1]) if values else value)  # rule 5: conflicts go up
    # Only changed values are rounded (up): an untouched stretch keeps its exact points and simplifies away.
    rounded = []
    for x, value in zip(ordered, values, strict=True):
        current = evaluate_table(table, x)
        rounded.append((x, current if abs(value - current) <= _TOLERANCE * 1e-3 else _round_up(value)))
    proposed = _simplified(_tidied(rounded))
    if _same_function(proposed, table):
        proposed = table
    return proposed, facts.evidence(table, proposed)


def _same_function(a: Points, b: Points) -> bool:
    raws = sorted({x for x, _ in a} | {x for x, _ in b})
    return all(abs(evaluate_table(a, x) - evaluate_table(b, x)) <= _TOLERANCE for x in raws)


@dataclass(frozen=True, slots=True)
class _BinFacts:
    """What :func:`propose_table` counted per bin, to describe each bin once the proposal is made."""

    edges: Sequence[float]
    live: Sequence[int]
    raw_low: Mapping[int, float]
    raw_high: Mapping[int, float]
    zones: Mapping[int, Zone]
    reviewed: Sequence[int]
    confirmed: Sequence[int]
    bounds: Mapping[int, float]
    bound_at: Mapping[int, float]
    min_count: int

    def evidence(self, table: Points, proposed: Points) -> tuple[BinEvidence, ...]:
        found: list[BinEvidence] = []
        for i in self.live:
            at = self.bound_at.get(i, self.raw_low[i])
            current, now = evaluate_table(table, at), evaluate_table(proposed, at)
            found.append(
                BinEvidence(
                    low=self.edges[i],
                    high=self.edges[i + 1],
                    raw_low=self.raw_low[i],
                    raw_high=self.raw_high[i],
                    zone=self.zones[i],
                    reviewed=self.reviewed[i],
                    confirmed=self.confirmed[i],
                    wilson_upper=self.bounds.get(i),
                    bound_raw=self.bound_at.get(i),
                    current=current,
                    proposed=now,
                    note=self.note(i, current, now),
                )
            )
        return tuple(found)

    def note(self, index: int, current: float, proposed: float) -> str:
        zone = self.zones[index]
        if zone is Zone.REDACTED:
            return "redacted by the machine: never lowered"
        base = "enough answers" if self.reviewed[index] >= self.min_count else f"too few answers (< {self.min_count})"
        if zone is Zone.BAND and self.confirmed[index]:
            base += "; a confirmed finding keeps it held"
        if proposed < current - _TOLERANCE:
            return f"{base}; lowered"
        if proposed > current + _TOLERANCE:
            return f"{base}; raised"
        return f"{base}; kept"


def propose_calibration(
    outcomes: Sequence[RegionOutcome],
    config: Config,
    *,
    min_count: int = DEFAULT_MIN_COUNT,
    bins: int = DEFAULT_BINS,
) -> tuple[TableProposal, ...]:
    """A proposal for every configured table that scored at least one reviewed region, by detector and table.

    Raises
    ------
    ValueError
        If ``min_count`` or ``bins`` is below 1.
    """
    tables = calibration_tables(config)
    proposals: list[TableProposal] = []
    for detector, table in sorted({(o.detector, o.table) for o in outcomes if o.table is not None}):
        assert table is not None
        chosen = [o for o in outcomes if o.detector == detector and o.table == table]
        kind = chosen[0].kind
        rule = config.policy.rule_for(kind)
        current = tables[detector][table]
        answers = [(o.detector_score, o.is_confirmed) for o in chosen if o.kind is kind]
        proposed, evidence = propose_table(current, answers, rule, min_count=min_count, bins=bins)
        proposals.append(TableProposal(detector, table, kind, rule, current, proposed, evidence, min_count))
    return tuple(proposals)


def untabled(outcomes: Sequence[RegionOutcome]) -> dict[str, int]:
    """Reviewed regions scored by no calibration table (option scores, Platt), per detector."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.table is None:
            counts[outcome.detector] = counts.get(outcome.detector, 0) + 1
    return dict(sorted(counts.items()))


# the overlay ---------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _points_toml(points: Points) -> str:
    return "[" + ", ".join(f"[{x!r}, {p!r}]" for x, p in points) + "]"


def overlay_toml(proposals: Sequence[TableProposal], *, written: date) -> str:
    """The proposed tables as a ``deid.toml`` overlay, with the counts behind every bin in comments.

    Only changed tables get a TOML key; unchanged ones are listed in the
    comments. The text loads with :func:`deid.config.load_config`.
    """
    lines = [
        OVERLAY_HEADER,
        f"# Written {written.isoformat()} by `deid review feedback` from reviewers' answers (counts only).",
        "# Review it, then copy the tables you accept into your deid.toml: a table named here replaces",
        '# that table whole. If deid.toml already has the same [detection.detectors."...".calibration]',
        "# section, merge the keys into it (TOML allows a section once).",
        "#",
        "# Rule (privacy first): a bin counts only with the minimum number of answers; its probability is",
        "# then at least the upper end of the 95% Wilson interval of its confirmed share, placed at the",
        "# bin's lowest answer (monotone: it bounds that point and below). Nothing at or above the kind's",
        "# min_score is lowered; a review-band bin with any confirmed finding stays >= review_score;",
        "# the table stays non-decreasing by raising; probabilities are rounded up.",
    ]
    by_detector: dict[str, list[TableProposal]] = {}
    for proposal in proposals:
        rule = proposal.rule
        lines += [
            "#",
            f"# {proposal.detector} {proposal.table} ({proposal.kind}; review band {rule.review_score:.2f}-"
            f"{rule.min_score:.2f}, redacted from {rule.min_score:.2f}; min count {proposal.min_count}): "
            + ("proposed below" if proposal.changed else "unchanged"),
        ]
        for b in proposal.bins:
            bound = f"Wilson upper {b.wilson_upper:.3f}" if b.wilson_upper is not None else "no bound"
            lines.append(
                f"#   p {b.low:.3f}-{b.high:.3f} raw {b.raw_low:.4f}-{b.raw_high:.4f}: {b.reviewed} reviewed, "
                f"{b.confirmed} real, {bound}: {b.current:.4f} -> {b.proposed:.4f} ({b.note})"
            )
        if proposal.changed:
            lines.append(f"#   current: {_points_toml(proposal.current)}")
            by_detector.setdefault(proposal.detector, []).append(proposal)
    if not by_detector:
        lines += ["#", "# No table changes: nothing to add to deid.toml."]
    for detector, changed in sorted(by_detector.items()):
        lines += ["", f"[detection.detectors.{_key(detector)}.calibration]"]
        lines += [f"{_key(p.table)} = {_points_toml(p.proposed)}" for p in changed]
    return "\n".join(lines) + "\n"


__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_MIN_COUNT",
    "OVERLAY_HEADER",
    "TABLE_MARKERS",
    "WILSON_Z",
    "Answer",
    "BinEvidence",
    "FeedbackReport",
    "GroupFeedback",
    "RegionOutcome",
    "ScoreBand",
    "TableMarker",
    "TableProposal",
    "Zone",
    "calibration_tables",
    "detector_name",
    "evaluate_table",
    "feedback_report",
    "invert_table",
    "isotonic_fit",
    "item_outcomes",
    "overlay_toml",
    "propose_calibration",
    "propose_table",
    "read_outcomes",
    "reviewer_answers",
    "score_edges",
    "table_of",
    "untabled",
]
