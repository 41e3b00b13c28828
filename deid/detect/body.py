"""Sensitive body regions with NudeNet's detector (ONNX model shipped in the ``nudenet`` wheel).

Medical photos of skin can show intimate areas; users of such datasets
expect those images to be looked at by a person before release. NudeNet's
320-pixel YOLO model labels exposed genitalia, breasts, buttocks and anus
among other body parts; those classes become ``sensitive_body`` regions,
which the default policy holds for review. The model is run through
:func:`deid.detect.runtime.load_network` directly because ``nudenet``'s own
reader expects four-channel arrays and BGR files.

NudeNet was trained on photos of bodies; on close-ups of skin (feet, nails,
wounds, naevi) it answers with stray genitalia and breast boxes (up to 0.78
on the tune half of devdata's plain skin photos). What tells those apart is
the model's own context: a real intimate area sits on a body, so NudeNet
also sees a face, a belly or an armpit. The raw class confidence goes
through the ``in_context`` calibration table when another body part scores
at least ``context_score`` anywhere in the image, and through ``standalone``
otherwise.
"""

from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from deid.config import DetectorSettings
from deid.detect import OptionDefaults, read_options
from deid.detect.calibration import CalibrationPoints, read_calibration
from deid.detect.runtime import RUNTIME_VERSION, load_network
from deid.errors import DetectorError
from deid.types import Box, Region, RegionKind, RGBImage

# Class order of nudenet 3.4's 320n.onnx (nudenet/nudenet.py ``__labels``).
NUDENET_CLASSES = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
SENSITIVE_CLASSES = frozenset(
    {"FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "FEMALE_BREAST_EXPOSED", "BUTTOCKS_EXPOSED", "ANUS_EXPOSED"}
)
CONTEXT_CLASSES = frozenset(
    {"FACE_FEMALE", "FACE_MALE", "BELLY_EXPOSED", "BELLY_COVERED", "ARMPITS_EXPOSED", "ARMPITS_COVERED"}
)
"""Body parts that place a sensitive box on a body (feet do not: a foot close-up is not a torso)."""


def _nudenet_model() -> Path:
    """Path of ``320n.onnx`` inside the installed ``nudenet`` wheel.

    Raises
    ------
    DetectorError
        If ``nudenet`` is not installed.
    """
    try:
        return Path(str(resources.files("nudenet").joinpath("320n.onnx")))
    except ModuleNotFoundError as error:
        raise DetectorError(
            "the NudeNet model is missing", hint="pip install nudenet (its model ships in the wheel)"
        ) from error


class NudenetBodyDetector:
    """Exposed intimate body parts as ``sensitive_body`` regions.

    Parameters
    ----------
    settings
        Options: ``min_score`` (raw class confidence floor), ``nms_iou`` and
        ``context_score`` (a face, belly or armpit this sure puts the box on a
        body). Calibration tables ``in_context`` and ``standalone``: raw
        class confidence to probability.

    Raises
    ------
    ConfigError
        On an unknown or mistyped option.
    DetectorError
        If the ``nudenet`` wheel (which ships the model) is not installed.
    """

    name = "body.nudenet"
    kinds = frozenset({RegionKind.SENSITIVE_BODY})
    defaults: ClassVar[OptionDefaults] = {"min_score": 0.3, "nms_iou": 0.45, "context_score": 0.4}
    # Mirrors deid/data/default.toml (where the provenance is), for detectors built without a config.
    calibration_defaults: ClassVar[dict[str, CalibrationPoints]] = {
        "in_context": ((0.3, 0.3), (1.0, 1.0)),
        "standalone": ((0.3, 0.02), (0.8, 0.2), (0.9, 0.3), (1.0, 0.6)),
    }
    input_side_px = 320

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.options = read_options(settings or DetectorSettings(), self.defaults, self.name)
        self.calibration = read_calibration(settings or DetectorSettings(), self.calibration_defaults, self.name)
        try:
            self.version = f"nudenet-{metadata.version('nudenet')}+{RUNTIME_VERSION}"
        except metadata.PackageNotFoundError as error:
            raise DetectorError("nudenet is not installed", hint="pip install nudenet") from error
        self._session: Any = load_network(_nudenet_model())
        self._input = self._session.input_names[0]
        self._sensitive = np.array([label in SENSITIVE_CLASSES for label in NUDENET_CLASSES])
        self._context = np.array([label in CONTEXT_CLASSES for label in NUDENET_CLASSES])

    def detect(self, image: RGBImage) -> list[Region]:
        """Return exposed intimate areas in ``image`` pixels."""
        height, width = image.shape[:2]
        side = max(height, width)
        # The model was trained on square inputs padded at the bottom and right.
        square = np.zeros((side, side, 3), dtype=np.uint8)
        # BGR: the order nudenet's own reader ends up feeding (imread, then two channel swaps).
        square[:height, :width] = image[:, :, ::-1]
        resized = cv2.resize(square, (self.input_side_px, self.input_side_px), interpolation=cv2.INTER_AREA)
        blob = (resized.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        output = np.asarray(self._session.run(None, {self._input: blob})[0])[0].T  # rows: cx, cy, w, h, 18 scores
        class_scores = output[:, 4:]
        best = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(best)), best]
        keep = (scores >= self.options["min_score"]) & self._sensitive[best]
        if not keep.any():
            return []
        context = float(class_scores[:, self._context].max())
        on_body = context >= self.options["context_score"]
        calibration = "in_context" if on_body else "standalone"
        table = self.calibration[calibration]
        where = f"on a body (context {context:.2f})" if on_body else f"no body around it (context {context:.2f})"
        factor = side / self.input_side_px
        centers, sizes = output[keep, :2] * factor, output[keep, 2:4] * factor
        xywh = np.concatenate([centers - sizes / 2, sizes], axis=1)
        floor, overlap = self.options["min_score"], self.options["nms_iou"]
        chosen = cv2.dnn.NMSBoxes(xywh.tolist(), scores[keep].tolist(), floor, overlap)
        regions: list[Region] = []
        for index in np.asarray(chosen, dtype=int).reshape(-1):
            box = Box.from_xywh(*xywh[index]).clip(image.shape)
            label = NUDENET_CLASSES[int(best[keep][index])]
            raw = float(scores[keep][index])
            if not box.is_empty:
                regions.append(
                    Region(
                        RegionKind.SENSITIVE_BODY,
                        box,
                        table(raw),
                        f"{self.name}@{self.version}",
                        f"NudeNet {label.lower().replace('_', ' ')} {raw:.2f}, {where}",
                        calibration=calibration,
                        raw_score=raw,
                    )
                )
        return regions
