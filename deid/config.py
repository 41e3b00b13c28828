"""Configuration: the shipped ``deid/data/default.toml`` overlaid by a user's ``deid.toml``.

:func:`load_config` returns frozen dataclasses and refuses unknown keys, wrong
types and out-of-range values at load time with a :class:`~deid.errors.ConfigError`
naming the file, the key and the fix. Every threshold lives in the TOML; none
in code. A section is added by declaring a dataclass here and a table in
``default.toml``; the loader walks the type hints, so nothing else changes.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import itertools
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

from deid.errors import ConfigError
from deid.types import Action, Box, Region, RegionKind

DEFAULT_CONFIG_NAME = "default.toml"
OptionValue = bool | int | float | str


# Formats deid.io can read (Pillow's names); input.allowed_formats picks among them.
INPUT_FORMATS = ("AVIF", "GIF", "HEIF", "JPEG", "MPO", "PNG", "TIFF", "WEBP")


@dataclass(frozen=True, slots=True)
class InputSettings:
    """What the loader accepts.

    ``allowed_formats`` names formats as Pillow does, decided by content
    (never by the file name); each must be one of :data:`INPUT_FORMATS`.
    """

    allowed_formats: tuple[str, ...]
    max_pixels: int
    max_file_bytes: int
    multi_frame: Literal["first", "hold"]
    trailing_data: Literal["hold_unknown", "hold_any", "ignore"] = "hold_unknown"

    def __post_init__(self) -> None:
        _require(self.max_pixels > 0, "input.max_pixels", "must be positive")
        _require(self.max_file_bytes > 0, "input.max_file_bytes", "must be positive")
        unknown = sorted(set(self.allowed_formats) - set(INPUT_FORMATS))
        _require(not unknown, "input.allowed_formats", f"{unknown} unknown; choose from {list(INPUT_FORMATS)}")


@dataclass(frozen=True, slots=True)
class OutputSettings:
    """How release images are encoded."""

    format: Literal["png", "jpeg"]
    jpeg_quality: int
    png_compress_level: int = 3
    png_encoder: Literal["fpng", "zlib"] = "zlib"

    def __post_init__(self) -> None:
        _require(1 <= self.jpeg_quality <= 95, "output.jpeg_quality", "must be in 1..95")
        _require(0 <= self.png_compress_level <= 9, "output.png_compress_level", "must be in 0..9")


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """One detector: on or off, and its own options (validated by the detector)."""

    enabled: bool = True
    options: Mapping[str, OptionValue] = field(default_factory=dict)
    calibration: Mapping[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)
    """Named tables of ``[raw, probability]`` points that turn a detector's raw
    evidence into the probability that a region identifies someone (see
    :mod:`deid.detect.calibration`); a detector refuses names it does not use."""

    def __post_init__(self) -> None:
        for name, table in self.calibration.items():
            key = f"calibration.{name}"
            _require(len(table) >= 2, key, "needs at least two [raw, probability] points")
            raws = [point[0] for point in table]
            probabilities = [point[1] for point in table]
            _require(all(len(point) == 2 for point in table), key, "points must be [raw, probability] pairs")
            _require(all(a < b for a, b in itertools.pairwise(raws)), key, "raw values must increase")
            _require(all(0.0 <= p <= 1.0 for p in probabilities), key, "probabilities must be in 0..1")
            _require(
                all(a <= b for a, b in itertools.pairwise(probabilities)),
                key,
                "probabilities must not decrease (a stronger detection is never less likely)",
            )


@dataclass(frozen=True, slots=True)
class DetectionSettings:
    """Which detectors run, and on what size of copy."""

    max_side_px: int
    detectors: Mapping[str, DetectorSettings]

    def __post_init__(self) -> None:
        _require(self.max_side_px >= 256, "detection.max_side_px", "must be at least 256")


@dataclass(frozen=True, slots=True)
class KindRule:
    """What to do with regions of one kind.

    A region scoring at least ``min_score`` gets ``action``; one scoring in
    ``[review_score, min_score)`` holds the image for review; lower ones are
    ignored. ``margin_frac`` grows the box before redaction or cropping.
    """

    action: Action
    min_score: float
    review_score: float
    margin_frac: float

    def __post_init__(self) -> None:
        _require(
            0.0 <= self.review_score <= self.min_score <= 1.0,
            "policy.<kind>",
            "needs 0 <= review_score <= min_score <= 1",
        )
        _require(0.0 <= self.margin_frac <= 2.0, "policy.<kind>.margin_frac", "must be in 0..2")


@dataclass(frozen=True, slots=True)
class CropSettings:
    """Limits on a lesion-preserving crop, its scoring, and what to do when none fits.

    A crop keeps at least ``min_area_frac`` of the image, is at least
    ``min_side_px`` on its short side and at most ``max_aspect`` long side to
    short side. With ``keep_centre`` it must contain the image centre
    (contributors centre the finding). Among the candidates the planner scores
    ``area_frac + centre_weight * closeness_to_centre + skin_weight * skin_kept_frac``.
    When no crop fits, the image gets ``fallback`` (``redact`` or ``hold``).
    """

    min_area_frac: float
    min_side_px: int
    max_aspect: float
    keep_centre: bool
    centre_weight: float
    skin_weight: float
    fallback: Literal["redact", "hold"]

    def __post_init__(self) -> None:
        _require(0.0 < self.min_area_frac <= 1.0, "policy.crop.min_area_frac", "must be in (0, 1]")
        _require(self.min_side_px >= 1, "policy.crop.min_side_px", "must be at least 1")
        _require(self.max_aspect >= 1.0, "policy.crop.max_aspect", "must be >= 1")
        _require(0.0 <= self.centre_weight <= 10.0, "policy.crop.centre_weight", "must be in 0..10")
        _require(0.0 <= self.skin_weight <= 10.0, "policy.crop.skin_weight", "must be in 0..10")


@dataclass(frozen=True, slots=True)
class BodyPartEvidence:
    """How the self-reported body parts weigh a region (see :mod:`deid.evidence`).

    A ``sensitive_body`` region on a case whose every reported part contains
    one of ``not_intimate_parts`` has its odds multiplied by
    ``likelihood_ratio``, unless it scores at least ``keep_above``.
    """

    not_intimate_parts: tuple[str, ...] = ()
    likelihood_ratio: float = 1.0
    keep_above: float = 1.0

    def __post_init__(self) -> None:
        _require(0.0 < self.likelihood_ratio <= 1.0, "policy.evidence.likelihood_ratio", "must be in (0, 1]")
        _require(0.0 <= self.keep_above <= 1.0, "policy.evidence.keep_above", "must be in 0..1")


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """Per-kind rules; a kind with no rule gets ``default_action`` (hold)."""

    default_action: Action
    fill_rgb: tuple[int, ...]
    rules: Mapping[RegionKind, KindRule]
    crop: CropSettings
    hold_body_parts: tuple[str, ...]
    evidence: BodyPartEvidence = field(default_factory=BodyPartEvidence)

    def __post_init__(self) -> None:
        _require(
            len(self.fill_rgb) == 3 and all(0 <= c <= 255 for c in self.fill_rgb),
            "policy.fill_rgb",
            "must be three values in 0..255",
        )

    def rule_for(self, kind: RegionKind) -> KindRule:
        """The rule for ``kind``, falling back to holding every region of it."""
        return self.rules.get(kind, KindRule(self.default_action, 0.0, 0.0, 0.1))

    def padded_box(self, region: Region, shape: Sequence[int]) -> Box:
        """``region``'s box grown by its kind's ``margin_frac`` and clipped to ``shape``: what a fill or a crop avoids.

        May be empty when the region lies wholly outside the image.
        """
        return region.box.expand(self.rule_for(region.kind).margin_frac).clip(shape)


@dataclass(frozen=True, slots=True)
class MatchSettings:
    """Public-copy and duplicate matching (see :mod:`deid.match`).

    Distances are Hamming bits between 64-bit perceptual hashes. A candidate
    at or below ``max_distance_bits`` is a copy unless geometric verification
    rejects it; one up to ``review_distance_bits`` is a copy only when
    verified, and otherwise held for review.
    """

    index_dir: str
    max_distance_bits: int
    review_distance_bits: int
    thumbnail_side_px: int
    trim_borders: bool
    reference_crop_sides: tuple[float, ...]
    reference_crop_grids: tuple[int, ...]
    max_candidates: int
    verify: bool
    verify_side_px: int
    verify_features: int
    verify_min_inliers: int
    verify_min_inlier_frac: float
    features: bool
    feature_side_px: int
    reference_features: int
    query_features: int
    feature_shortlist: int
    feature_min_matches: int
    feature_min_inliers: int
    feature_min_inlier_frac: float
    keep_duplicate: Literal["first", "largest"]
    lowe_ratio: float
    verify_min_keypoints: int
    commit_every: int
    web_provider: Literal["none", "cloud_vision"]
    web_endpoint: str
    web_api_key_env: str
    web_timeout_s: float
    web_max_results: int

    def __post_init__(self) -> None:
        _require(
            0 <= self.max_distance_bits <= self.review_distance_bits <= 64,
            "match",
            "needs 0 <= max_distance_bits <= review_distance_bits <= 64",
        )
        _require(64 <= self.thumbnail_side_px <= 2048, "match.thumbnail_side_px", "must be in 64..2048")
        sides, grids = self.reference_crop_sides, self.reference_crop_grids
        _require(all(0.3 <= side < 1.0 for side in sides), "match.reference_crop_sides", "must each be in [0.3, 1)")
        _require(
            len(grids) == len(sides) and all(1 <= grid <= 5 for grid in grids),
            "match.reference_crop_grids",
            "needs one grid size in 1..5 per reference_crop_sides entry",
        )
        _require(self.max_candidates >= 1, "match.max_candidates", "must be at least 1")
        _require(128 <= self.verify_side_px <= 4096, "match.verify_side_px", "must be in 128..4096")
        _require(self.verify_features >= 100, "match.verify_features", "must be at least 100")
        _require(self.verify_min_inliers >= 4, "match.verify_min_inliers", "must be at least 4 (a homography needs 4)")
        _require(0.0 < self.verify_min_inlier_frac <= 1.0, "match.verify_min_inlier_frac", "must be in (0, 1]")
        _require(128 <= self.feature_side_px <= 4096, "match.feature_side_px", "must be in 128..4096")
        _require(8 <= self.reference_features <= 1024, "match.reference_features", "must be in 8..1024")
        _require(
            self.reference_features <= self.query_features <= 5000,
            "match.query_features",
            "must be in reference_features..5000",
        )
        _require(1 <= self.feature_shortlist <= 1000, "match.feature_shortlist", "must be in 1..1000")
        _require(
            4 <= self.feature_min_matches <= self.reference_features,
            "match.feature_min_matches",
            "must be in 4..reference_features",
        )
        _require(
            self.feature_min_inliers >= self.verify_min_inliers,
            "match.feature_min_inliers",
            "must be at least verify_min_inliers (feature candidates need stronger geometry)",
        )
        _require(
            self.verify_min_inlier_frac <= self.feature_min_inlier_frac <= 1.0,
            "match.feature_min_inlier_frac",
            "must be in verify_min_inlier_frac..1",
        )
        _require(0.5 <= self.lowe_ratio < 1.0, "match.lowe_ratio", "must be in 0.5..1 (exclusive)")
        _require(
            8 <= self.verify_min_keypoints <= self.verify_features,
            "match.verify_min_keypoints",
            "must be in 8..verify_features",
        )
        _require(self.commit_every >= 1, "match.commit_every", "must be at least 1")
        _require(self.web_timeout_s > 0, "match.web_timeout_s", "must be positive")
        _require(1 <= self.web_max_results <= 1000, "match.web_max_results", "must be in 1..1000")


@dataclass(frozen=True, slots=True)
class DemographicsSettings:
    """Bucketing, small-cell mitigation, free text and k-anonymity of self-reported answers.

    ``hierarchies`` maps a quasi-identifier to its generalisation levels: level
    ``i`` maps a value to a coarser one; keys are exact values, ``"*"`` (any)
    or ``"*,*"`` (any multi-select combination); what ``"*"`` maps to on the
    last level is the blanked value (see :mod:`deid.anonymity`). With ``l`` above
    1, every class also needs ``l`` distinct values of ``sensitive_column``.
    ``names`` and the lines of ``names_file`` are scrubbed from kept free text.
    """

    k: int
    min_age: int
    quasi_identifiers: tuple[str, ...]
    min_sex_cell: int
    min_race_cell: int
    keep_free_text: bool
    source: str = "deid"
    l: int = 1  # noqa: E741 - the letter of l-diversity
    sensitive_column: str = ""
    hierarchies: Mapping[str, tuple[Mapping[str, str], ...]] = field(default_factory=dict)
    names: tuple[str, ...] = ()
    names_file: str = ""

    def __post_init__(self) -> None:
        _require(self.k >= 1, "demographics.k", "must be at least 1")
        _require(self.l >= 1, "demographics.l", "must be at least 1 (1 turns l-diversity off)")
        _require(self.min_sex_cell >= 1 and self.min_race_cell >= 1, "demographics.min_*_cell", "must be at least 1")
        _require(
            all(levels for levels in self.hierarchies.values()),
            "demographics.hierarchies",
            "needs at least one level per attribute",
        )
        _require(self.l == 1 or bool(self.sensitive_column), "demographics.sensitive_column", "must be set when l > 1")


@dataclass(frozen=True, slots=True)
class SkinSettings:
    """The fixed skin-colour box (YCbCr, Chai and Ngan 1999) shared by crop scoring and the skin-tone estimate.

    A colour-model constant, not a privacy threshold: it only weighs crop
    candidates and picks the pixels the tone estimate measures.
    """

    cb_range: tuple[int, ...]
    cr_range: tuple[int, ...]
    luma_range: tuple[int, ...]
    mask_side_px: int
    tone_side_px: int

    def __post_init__(self) -> None:
        for key in ("cb_range", "cr_range", "luma_range"):
            low_high = getattr(self, key)
            _require(
                len(low_high) == 2 and 0 <= low_high[0] < low_high[1] <= 255,
                f"skin.{key}",
                "must be [low, high] with 0 <= low < high <= 255",
            )
        _require(32 <= self.mask_side_px <= 2048, "skin.mask_side_px", "must be in 32..2048")
        _require(64 <= self.tone_side_px <= 4096, "skin.tone_side_px", "must be in 64..4096")


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    """Where the ledger lives: empty ``url`` means ``<workspace>/ledger.db`` (SQLite)."""

    url: str


@dataclass(frozen=True, slots=True)
class ReviewSettings:
    """The manual review queue (:mod:`deid.review`): who may sign in, how long, and what is audited.

    ``audit_share`` of the images the machine released on its own also enter
    the queue, marked audit, chosen deterministically per image id. A sign-in
    name or address with ``max_failed_signins`` failures within
    ``signin_window_s`` is refused until the window has passed.
    """

    host: str
    port: int
    session_hours: float
    max_failed_signins: int
    signin_window_s: float
    audit_share: float
    page_size: int
    preview_side_px: int
    exclude_reasons: tuple[str, ...]
    scrypt_n: int

    def __post_init__(self) -> None:
        _require(bool(self.host), "review.host", "must be set (127.0.0.1 keeps the page on this machine)")
        _require(1 <= self.port <= 65535, "review.port", "must be in 1..65535")
        _require(0.1 <= self.session_hours <= 24 * 7, "review.session_hours", "must be in 0.1..168")
        _require(1 <= self.max_failed_signins <= 100, "review.max_failed_signins", "must be in 1..100")
        _require(1.0 <= self.signin_window_s <= 86400.0, "review.signin_window_s", "must be in 1..86400")
        _require(0.0 <= self.audit_share <= 1.0, "review.audit_share", "must be in 0..1")
        _require(1 <= self.page_size <= 1000, "review.page_size", "must be in 1..1000")
        _require(256 <= self.preview_side_px <= 8192, "review.preview_side_px", "must be in 256..8192")
        _require(
            bool(self.exclude_reasons) and all(r.isidentifier() for r in self.exclude_reasons),
            "review.exclude_reasons",
            "must be a non-empty list of short codes (letters, digits, underscores)",
        )
        _require(
            2**10 <= self.scrypt_n <= 2**20 and self.scrypt_n & (self.scrypt_n - 1) == 0,
            "review.scrypt_n",
            "must be a power of two in 1024..1048576",
        )


@dataclass(frozen=True, slots=True)
class ReleaseSettings:
    """What the release gate and its data card need from the curator.

    ``collection`` and ``consent`` describe how the data was gathered and
    what contributors agreed to; while either is empty the gate refuses.
    ``max_small_cell`` marks marginal counts below it as small cells in the
    card (reported, not refused).
    """

    collection: str = ""
    consent: str = ""
    title: str = "deid release"
    contact: str = ""
    licence: str = (
        "Use is permitted for research and education only. Any attempt to re-identify a contributor, "
        "to link a case or image to a person, or to contact a contributor is forbidden."
    )
    known_issues: tuple[str, ...] = ()
    max_small_cell: int = 5

    def __post_init__(self) -> None:
        _require(self.max_small_cell >= 1, "release.max_small_cell", "must be at least 1")
        _require(bool(self.licence.strip()), "release.licence", "must not be empty")


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration."""

    input: InputSettings
    output: OutputSettings
    detection: DetectionSettings
    policy: PolicySettings
    match: MatchSettings
    demographics: DemographicsSettings
    skin: SkinSettings
    ledger: LedgerSettings
    review: ReviewSettings
    release: ReleaseSettings = field(default_factory=ReleaseSettings)
    source: tuple[str, ...] = ()


def load_config(path: str | Path | None = None) -> Config:
    """Load the shipped defaults, overlaid by ``path`` when given.

    Parameters
    ----------
    path
        A user ``deid.toml``; its tables are merged key by key over the defaults.

    Returns
    -------
    Config
        Frozen, validated settings.

    Raises
    ------
    ConfigError
        If a file cannot be read or parsed, a key is unknown, or a value has
        the wrong type or range. The message names the file and the key.

    Examples
    --------
    >>> config = load_config()
    >>> config.policy.rule_for(RegionKind.FACE).action
    <Action.REDACT: 'redact'>
    """
    default_text = resources.files("deid.data").joinpath(DEFAULT_CONFIG_NAME).read_text("utf-8")
    merged = _parse(default_text, DEFAULT_CONFIG_NAME)
    sources = [DEFAULT_CONFIG_NAME]
    if path is not None:
        user_path = Path(path)
        try:
            user_text = user_path.read_text("utf-8")
        except OSError as error:
            raise ConfigError(f"cannot read config: {error.strerror}", path=user_path) from error
        _merge(merged, _parse(user_text, str(user_path)))
        sources.append(str(user_path))
    try:
        return _build(Config, {**merged, "source": sources}, "")
    except ConfigError as error:
        raise ConfigError(error.message, path=sources[-1], hint=error.hint) from None


@functools.cache
def default_config() -> Config:
    """The shipped defaults alone, loaded once: for library calls made without a configuration."""
    return load_config()


def _parse(text: str, name: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"not valid TOML: {error}", path=name, hint="fix the syntax") from error


def _merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> None:
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _require(condition: bool, key: str, problem: str) -> None:
    if not condition:
        raise ConfigError(f"{key} {problem}", hint=f"change {key} in deid.toml")


T = TypeVar("T")


def _build(cls: type[T], data: Any, where: str) -> T:
    """Turn a TOML table into dataclass ``cls``, checking keys and types by its hints."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'} must be a table", hint="see deid/data/default.toml")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key {where + '.' if where else ''}{unknown[0]}",
            hint=f"valid keys here: {', '.join(sorted(fields))}",
        )
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        key = f"{where}.{name}" if where else name
        if name in data:
            values[name] = _convert(hints[name], data[name], key)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing key {key}", hint="add it to deid.toml or restore the default")
    try:
        return cls(**values)
    except ConfigError as error:
        raise ConfigError(error.message.replace("<kind>", where.rsplit(".", 1)[-1]), hint=error.hint) from None


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)  # type: ignore[arg-type]  # a dataclass type, per the check above
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key} = {value!r} is not allowed", hint=f"use one of {', '.join(map(repr, args))}")
        return value
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _convert(option, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key} = {value!r} has the wrong type", hint=f"expected {hint}")
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list", hint=f"expected {hint}")
        return tuple(_convert(args[0], item, f"{key}[{i}]") for i, item in enumerate(value))
    if origin in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a table", hint=f"expected {hint}")
        return {_convert(args[0], k, f"{key}.{k}"): _convert(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            valid = ", ".join(str(member.value) for member in hint)
            raise ConfigError(f"{key} = {value!r} is not allowed", hint=f"use one of {valid}") from None
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is Any or (
        isinstance(hint, type) and isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    ):
        return value
    raise ConfigError(f"{key} = {value!r} has the wrong type", hint=f"expected {getattr(hint, '__name__', hint)}")
