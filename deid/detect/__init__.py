"""The detector seam: a :class:`Detector` protocol and a name-keyed registry.

A detector knows how to find one kind of identifying region, and nothing
else: it neither decides what to do with a region (that is
:mod:`deid.policy`) nor stores it (that is :mod:`deid.ledger`). Detectors
load their models once, in ``__init__``; ``detect`` never mutates its input
and returns ``[]`` when nothing is found.

Detectors run on a downscaled *detection copy* of the upright image; boxes
come back in the copy's pixels and :func:`detect_regions` maps them to the
full-resolution image.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from deid.config import Config, DetectorSettings
from deid.errors import ConfigError, DeidError, DetectorError
from deid.heap import bound_heap
from deid.native_logs import filter_native_stderr
from deid.types import Region, RegionKind, RGBImage

logger = logging.getLogger(__name__)


@runtime_checkable
class Detector(Protocol):
    """Finds identifying regions of some kinds on an upright RGB image."""

    name: str
    version: str
    kinds: frozenset[RegionKind]

    def detect(self, image: RGBImage) -> list[Region]:
        """Return the regions found, in ``image``'s pixels; ``[]`` when none."""
        ...


DetectorFactory = Callable[[DetectorSettings], Detector]

OptionDefaults = Mapping[str, float | bool]


def read_options(settings: DetectorSettings, defaults: OptionDefaults, name: str) -> dict[str, float]:
    """Merge a detector's options over its defaults, refusing unknown or mistyped ones.

    A default that is a ``bool`` is a switch and must be given as ``true`` or
    ``false``; every other option must be a number. Switches come back as
    ``1.0``/``0.0`` so every option reads the same way.

    Raises
    ------
    ConfigError
        If an option is unknown, or a number is given for a switch or the reverse.
    """
    unknown = sorted(set(settings.options) - set(defaults))
    if unknown:
        raise ConfigError(
            f"unknown option {unknown[0]!r} for detector {name}",
            hint=f"valid options: {', '.join(sorted(defaults))}",
        )
    merged = {key: float(value) for key, value in defaults.items()}
    for key, value in settings.options.items():
        if isinstance(defaults[key], bool):
            if not isinstance(value, bool):
                raise ConfigError(
                    f"option {key!r} of detector {name} must be true or false", hint=f"default is {defaults[key]}"
                )
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"option {key!r} of detector {name} must be a number", hint=f"default is {defaults[key]}")
        merged[key] = float(value)
    return merged


def _lazy(module: str, attribute: str) -> DetectorFactory:
    """A factory that imports its detector only when built (models are heavy)."""

    def build(settings: DetectorSettings) -> Detector:
        factory: DetectorFactory = getattr(importlib.import_module(module), attribute)
        return factory(settings)

    build.__qualname__ = f"{module}.{attribute}"
    return build


DETECTORS: dict[str, DetectorFactory] = {
    "body.nudenet": _lazy("deid.detect.body", "NudenetBodyDetector"),
    "faces.centerface": _lazy("deid.detect.faces", "CenterFaceDetector"),
    "faces.ensemble": _lazy("deid.detect.faces", "FaceEnsembleDetector"),
    "faces.landmarks": _lazy("deid.detect.faces", "MediapipeHeadDetector"),
    "faces.mediapipe": _lazy("deid.detect.faces", "MediapipeFaceDetector"),
    "people.mediapipe": _lazy("deid.detect.people", "MediapipePersonDetector"),
    "text.rapidocr": _lazy("deid.detect.text", "RapidOcrTextDetector"),
    "manual": _lazy("deid.detect.manual", "ManualRegions"),
    "tattoos.ink": _lazy("deid.detect.tattoos", "InkTattooDetector"),
}
"""Every detector deid ships, by the name used in ``[detection.detectors."<name>"]``."""


def build_detectors(config: Config) -> list[Detector]:
    """Build the enabled detectors named in ``config``, in name order.

    Raises
    ------
    ConfigError
        If a name is not in :data:`DETECTORS` (the message lists valid names)
        or a detector refuses its options.
    """
    detectors: list[Detector] = []
    for name, settings in sorted(config.detection.detectors.items()):
        if name not in DETECTORS:
            raise ConfigError(
                f"unknown detector {name!r}",
                hint=f"valid detectors: {', '.join(sorted(DETECTORS))}",
            )
        if settings.enabled:
            detectors.append(DETECTORS[name](settings))
    return detectors


_BUILT: dict[str, tuple[Detector, ...]] = {}


def detectors_for(config: Config) -> Sequence[Detector]:
    """The detectors for a configuration, built once per process (models are heavy).

    Keyed on the ``[detection]`` settings themselves (their repr is stable: frozen
    dataclasses over TOML tables), so a configuration built in code is served too.
    The batch, ``deid redact`` and the release gate share this one cache.
    """
    key = repr(config.detection)
    if key not in _BUILT:
        filter_native_stderr()  # the models' native loggers print a line per load and per image
        bound_heap()  # a worker frees image-sized buffers all the time; keep them off the heap
        _BUILT[key] = tuple(build_detectors(config))
    return _BUILT[key]


def make_detection_copy(image: RGBImage, *, max_side_px: int) -> tuple[RGBImage, float]:
    """Downscale ``image`` so its long side is at most ``max_side_px``.

    Returns
    -------
    copy, scale
        The copy (``image`` itself when already small enough) and the factor
        that maps copy pixels back to ``image`` pixels (>= 1).
    """
    height, width = image.shape[:2]
    long_side = max(height, width)
    if long_side <= max_side_px:
        return image, 1.0
    factor = max_side_px / long_side
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    source = image
    while max(source.shape[:2]) >= 2 * max_side_px:
        # Halve first (OpenCV's vectorised 2x2 box average), then area-resample the rest: a 12 MP
        # photo shrinks in about 60% of the time, on average within half a grey level of one resize.
        half = (max(1, source.shape[1] // 2), max(1, source.shape[0] // 2))
        source = np.asarray(cv2.resize(source, half, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    copy = cv2.resize(source, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(copy), long_side / max(size)


def detect_regions(
    image: RGBImage,
    detectors: Sequence[Detector],
    *,
    max_side_px: int,
    kinds: frozenset[RegionKind] | None = None,
    detection_copy: RGBImage | None = None,
) -> list[Region]:
    """Run every detector on a detection copy and map its boxes back to ``image``.

    Parameters
    ----------
    image
        The full-resolution upright image.
    detectors
        Detectors to run, usually from :func:`build_detectors`.
    max_side_px
        Long side of the detection copy.
    kinds
        When given, only regions of these kinds are kept.
    detection_copy
        ``make_detection_copy(image, max_side_px=max_side_px)[0]`` when the caller
        already made it (the pipeline shares one copy with matching).

    Returns
    -------
    list[Region]
        Regions in full-resolution pixels, clipped to the image.

    Raises
    ------
    DetectorError
        If any detector fails; the image must then be held, never released
        on a partial result.
    """
    if detection_copy is None:
        copy, scale = make_detection_copy(image, max_side_px=max_side_px)
    else:
        copy, scale = detection_copy, max(image.shape[:2]) / max(detection_copy.shape[:2])
    found: list[Region] = []
    for detector in detectors:
        if kinds is not None and not (detector.kinds & kinds):
            continue
        try:
            regions = detector.detect(copy)
        except DeidError:
            raise
        except Exception as error:  # a model failure must hold the image, whatever it is
            raise DetectorError(
                f"{detector.name}@{detector.version} failed: {error!r}", hint="the image is held"
            ) from error
        for region in regions:
            if kinds is not None and region.kind not in kinds:
                continue
            box = region.box.scale(scale).clip(image.shape) if scale != 1.0 else region.box.clip(image.shape)
            if not box.is_empty:
                found.append(replace(region, box=box))
    logger.debug("found %d regions with %d detectors", len(found), len(detectors))
    return found


__all__ = [
    "DETECTORS",
    "Detector",
    "DetectorFactory",
    "OptionDefaults",
    "build_detectors",
    "detect_regions",
    "make_detection_copy",
    "read_options",
]
