"""Records shared by every part of deid.

All records are frozen, slotted dataclasses; enumerations are ``StrEnum`` so
they serialise as their value. Past :func:`deid.io.load_image` an image is a
``numpy`` ``uint8`` array of shape ``H x W x 3`` (RGB), upright.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

RGBImage: TypeAlias = npt.NDArray[np.uint8]
"""An upright ``H x W x 3`` ``uint8`` RGB image."""

MAX_CALIBRATION_CHARS = 64
"""The longest calibration table name a region's JSON form may carry (also the ledger column's width)."""


class RegionKind(enum.StrEnum):
    """What an identifying region shows."""

    FACE = "face"
    TEXT = "text"
    TATTOO = "tattoo"
    PERSON = "person"
    SENSITIVE_BODY = "sensitive_body"


class Action(enum.StrEnum):
    """What a policy does with an image because of its regions."""

    KEEP = "keep"
    REDACT = "redact"
    CROP = "crop"
    HOLD = "hold"
    EXCLUDE = "exclude"


class Status(enum.StrEnum):
    """Where an item stands after a step."""

    OK = "ok"
    HELD = "held"
    EXCLUDED = "excluded"


class ShotType(enum.StrEnum):
    """SCIN's shot types."""

    CLOSE_UP = "CLOSE_UP"
    AT_AN_ANGLE = "AT_AN_ANGLE"
    AT_DISTANCE = "AT_DISTANCE"


@dataclass(frozen=True, slots=True, order=True)
class Box:
    """An axis-aligned, half-open pixel rectangle on the upright image.

    ``left <= x < right`` and ``top <= y < bottom``: the same order as a PIL
    crop box, and ``image[box.top:box.bottom, box.left:box.right]`` slices it.

    Examples
    --------
    >>> Box(10, 20, 30, 60).width, Box(10, 20, 30, 60).height
    (20, 40)
    >>> Box.from_xywh(10, 20, 20, 40) == Box(10, 20, 30, 60)
    True
    """

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        """Width in pixels; 0 for an empty or inverted box."""
        return max(0, self.right - self.left)

    @property
    def height(self) -> int:
        """Height in pixels; 0 for an empty or inverted box."""
        return max(0, self.bottom - self.top)

    @property
    def area(self) -> int:
        """Number of pixels covered."""
        return self.width * self.height

    @property
    def is_empty(self) -> bool:
        """True when the box covers no pixel."""
        return self.area == 0

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> Box:
        """Build from ``[x, y, w, h]`` (the JSON and label convention), rounding outwards."""
        left, top = int(np.floor(x)), int(np.floor(y))
        return cls(left, top, int(np.ceil(x + w)), int(np.ceil(y + h)))

    def to_xywh(self) -> list[int]:
        """Return ``[x, y, w, h]`` for JSON output."""
        return [self.left, self.top, self.width, self.height]

    def clip(self, shape: Sequence[int]) -> Box:
        """Clip to an image of ``shape`` ``(height, width, ...)``; may return an empty box."""
        height, width = int(shape[0]), int(shape[1])
        left = min(max(self.left, 0), width)
        top = min(max(self.top, 0), height)
        right = min(max(self.right, left), width)
        bottom = min(max(self.bottom, top), height)
        return Box(left, top, right, bottom)

    def expand(self, margin_frac: float) -> Box:
        """Grow every side by ``margin_frac`` of the box's own width or height, rounding outwards."""
        dx = int(np.ceil(self.width * margin_frac))
        dy = int(np.ceil(self.height * margin_frac))
        return Box(self.left - dx, self.top - dy, self.right + dx, self.bottom + dy)

    def scale(self, factor: float) -> Box:
        """Map from a resized image to one ``factor`` times larger, rounding outwards."""
        return Box(
            int(np.floor(self.left * factor)),
            int(np.floor(self.top * factor)),
            int(np.ceil(self.right * factor)),
            int(np.ceil(self.bottom * factor)),
        )

    def intersection(self, other: Box) -> Box:
        """The overlap of two boxes (empty when they do not overlap)."""
        left, top = max(self.left, other.left), max(self.top, other.top)
        right, bottom = min(self.right, other.right), min(self.bottom, other.bottom)
        return Box(left, top, max(left, right), max(top, bottom))

    def union(self, other: Box) -> Box:
        """The smallest box holding both."""
        return Box(
            min(self.left, other.left),
            min(self.top, other.top),
            max(self.right, other.right),
            max(self.bottom, other.bottom),
        )

    def iou(self, other: Box) -> float:
        """Intersection over union, 0.0 for two empty boxes."""
        inter = self.intersection(other).area
        union = self.area + other.area - inter
        return inter / union if union else 0.0

    def coverage_of(self, other: Box) -> float:
        """Fraction of ``other`` that this box covers."""
        return self.intersection(other).area / other.area if other.area else 0.0


@dataclass(frozen=True, slots=True)
class Region:
    """An identifying region found on an upright image.

    ``source`` is ``"<detector>@<version>"`` or ``"review:<reviewer>"``;
    ``note`` says in words why the region was flagged (for a reviewer).

    ``calibration`` and ``raw_score`` say where ``score`` came from when a
    calibration table made it: the table's name in the detector's
    ``[detection.detectors."<name>".calibration]`` (``"mediapipe_only"``,
    ``"standalone"``, ``"legible"``, ...) and the detector's own value the
    table read. Both are ``None`` for a score no table made (an option score,
    a Platt fit, a reviewer's box) and for regions stored before they existed.
    They describe the detector's reading, so they stay when case evidence
    (:mod:`deid.evidence`) later lowers ``score``.
    """

    kind: RegionKind
    box: Box
    score: float
    source: str
    note: str = ""
    calibration: str | None = None
    raw_score: float | None = None

    def to_json(self) -> dict[str, object]:
        """JSON form used by the CLI, ledger, review store and reports (box as ``[x, y, w, h]``).

        ``calibration`` and ``raw_score`` are written only when set (the raw
        value unrounded, since feedback reads it back through the table).
        """
        data: dict[str, object] = {
            "kind": str(self.kind),
            "box": self.box.to_xywh(),
            "score": round(float(self.score), 4),
            "source": self.source,
            "note": self.note,
        }
        if self.calibration is not None:
            data["calibration"] = self.calibration
        if self.raw_score is not None:
            data["raw_score"] = float(self.raw_score)
        return data

    @classmethod
    def from_json(cls, data: object) -> Region:
        """Read :meth:`to_json`'s form back (scores as stored, rounded to 4 places).

        Rows written before ``calibration`` and ``raw_score`` existed have
        neither key and read back with both ``None``.

        Raises
        ------
        ValueError
            If a field is missing or of the wrong type.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"not a region: {data!r}")
        try:
            box = data["box"]
            if not (isinstance(box, list | tuple) and len(box) == 4):
                raise ValueError(f"a region box is [x, y, w, h], got {box!r}")
            calibration, raw_score = cls.provenance_from_json(data)
            return cls(
                RegionKind(str(data["kind"])),
                Box.from_xywh(*(float(v) for v in box)),
                float(data["score"]),
                str(data.get("source", "")),
                str(data.get("note", "")),
                calibration,
                raw_score,
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"not a region: {error!r}") from error

    @staticmethod
    def provenance_from_json(data: Mapping[str, object]) -> tuple[str | None, float | None]:
        """``(calibration, raw_score)`` of a region's JSON form; ``(None, None)`` where the keys are absent.

        Raises
        ------
        ValueError
            If ``calibration`` is not a non-empty string of at most
            :data:`MAX_CALIBRATION_CHARS` characters, or ``raw_score`` is not
            a finite number.
        """
        calibration = data.get("calibration")
        raw_score = data.get("raw_score")
        if calibration is not None and not (
            isinstance(calibration, str) and 0 < len(calibration) <= MAX_CALIBRATION_CHARS
        ):
            raise ValueError(f"a region's calibration is a table name, got {calibration!r}")
        if raw_score is not None and not (
            isinstance(raw_score, int | float) and not isinstance(raw_score, bool) and math.isfinite(raw_score)
        ):
            raise ValueError(f"a region's raw_score is a finite number, got {raw_score!r}")
        return calibration, None if raw_score is None else float(raw_score)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy decided for one image, and the rules that made it.

    ``regions`` are those the action applies to (redacted, cropped away,
    held for); ``crop`` is the rectangle kept when ``action`` is ``CROP``.
    """

    action: Action
    regions: tuple[Region, ...] = ()
    reasons: tuple[str, ...] = ()
    crop: Box | None = None

    def to_json(self) -> dict[str, object]:
        """The one JSON form of a decision: CLI, ledger, review and reports (boxes as ``[x, y, w, h]``)."""
        return {
            "action": str(self.action),
            "reasons": list(self.reasons),
            "regions": [region.to_json() for region in self.regions],
            "crop": self.crop.to_xywh() if self.crop is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Decision:
        """Read :meth:`to_json`'s form back.

        Raises
        ------
        ValueError
            If a field is missing or of the wrong type.
        """
        try:
            regions = data.get("regions") or []
            crop = data.get("crop")
            reasons = data.get("reasons") or []
            if not (isinstance(regions, list) and isinstance(reasons, list)):
                raise TypeError("regions and reasons must be lists")
            return cls(
                Action(str(data["action"])),
                tuple(Region.from_json(region) for region in regions),
                tuple(str(reason) for reason in reasons),
                Box.from_xywh(*crop) if isinstance(crop, list) else None,
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"not a decision: {error!r}") from error


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A perceptual hash as hex, so it is encoded once and searched many times."""

    method: str
    hex: str

    def distance(self, other: Fingerprint) -> int:
        """Hamming distance in bits.

        Raises
        ------
        ValueError
            If the methods or lengths differ.
        """
        if self.method != other.method or len(self.hex) != len(other.hex):
            raise ValueError(f"cannot compare {self.method}/{len(self.hex)} with {other.method}/{len(other.hex)}")
        return (int(self.hex, 16) ^ int(other.hex, 16)).bit_count()


@dataclass(frozen=True, slots=True)
class Match:
    """A reference image that looks like the query."""

    reference: str
    distance: float
    method: str
    verified: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of a step for one item: ok, held or excluded, with the reasons."""

    status: Status
    reasons: tuple[str, ...] = ()

    @classmethod
    def ok(cls, *reasons: str) -> Outcome:
        """An item that may go on."""
        return cls(Status.OK, tuple(reasons))

    @classmethod
    def held(cls, *reasons: str) -> Outcome:
        """An item a person must look at."""
        return cls(Status.HELD, tuple(reasons))

    @classmethod
    def excluded(cls, *reasons: str) -> Outcome:
        """An item that must never be released."""
        return cls(Status.EXCLUDED, tuple(reasons))


@dataclass(frozen=True, slots=True)
class CaseImage:
    """One image of a contribution, as named in ``cases.csv``."""

    file: str
    shot_type: ShotType | None = None


@dataclass(frozen=True, slots=True)
class Case:
    """One contribution: self-reported answers and up to three images.

    Answers are kept raw here; :mod:`deid.demographics` maps them to the
    release schema. ``None`` means the contributor gave no answer.
    """

    contribution_id: str
    submitted_at: str
    age: int | None = None
    sex: str | None = None
    skin_type: str | None = None
    race_ethnicity: frozenset[str] = frozenset()
    body_parts: frozenset[str] = frozenset()
    symptoms: frozenset[str] = frozenset()
    textures: frozenset[str] = frozenset()
    duration: str | None = None
    related_category: str | None = None
    description: str = ""
    images: tuple[CaseImage, ...] = ()


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One image's state in the ledger."""

    image_id: str
    contribution_id: str
    sha256: str
    original_name: str
    status: Status
    action: Action | None = None
    staged_name: str | None = None
    reasons: tuple[str, ...] = field(default=())
    shot_type: str | None = None
