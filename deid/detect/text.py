"""Text detection with rapidocr (PP-OCR models shipped inside its wheel; offline).

Names, numbers, screens, ID cards, wristbands and documents are all text,
and any of them can identify a contributor. Detection (DB text detector) runs
on the detection copy at its own size, so text about 10 pixels high there is
still found; images smaller than ``upscale_below_px`` are also looked at
enlarged, because phone thumbnails and crops hide small print (the detector
is scale-sensitive: large handwriting is found at the native size, a small
signature only enlarged). The largest boxes are
then read (recognised), and the string goes into :attr:`Region.note` so a
reviewer sees why the region was flagged (the ledger keeps notes private).

A box whose content reads as text, at any of the reading passes (as found,
enlarged, and turned a quarter either way for vertical script), is always
identifying: its score is the recognition confidence through the ``legible``
calibration table, which never falls below the redaction threshold. A box
that no pass can read is skin, wound or hair texture unless its shape says
print: a line (thin for the image, or long and narrow) with sharp strokes
(a scar or a marker line is long but soft), dark marks on a
paper-white backdrop, or anything on a colourless image (a scan or a
grey photo of a page: no colour says skin); print-shaped boxes score ``print_score`` (held for
review), texture ``texture_score`` (below the review band). Measured on the
tune half of devdata: the 67 unreadable boxes on plain skin photos are
almost all thick and square (84% at least 0.2 of the image's short side),
while unreadable text-image boxes are glyphs or lines (at most 0.15) or,
once, a defocused crossword on white paper.
"""

from __future__ import annotations

import threading
from importlib import metadata, resources
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
from rapidocr import RapidOCR
from rapidocr.ch_ppocr_det.utils import DBPostProcess, DetPreProcess

from deid.config import DetectorSettings
from deid.detect import OptionDefaults, read_options
from deid.detect.calibration import CalibrationPoints, read_calibration
from deid.detect.geometry import merge_regions
from deid.detect.runtime import RUNTIME_VERSION, load_network
from deid.errors import DetectorError
from deid.types import Box, Region, RegionKind, RGBImage

_MIN_DET_HEIGHT = 30  # rapidocr's Global.min_height and width_height_ratio
_MAX_DET_ASPECT = 8


class RapidOcrTextDetector:
    """Text regions from rapidocr's PP-OCR detector, the largest read for the reviewer.

    Parameters
    ----------
    settings
        Options: ``max_side_px`` (the detector's input long side: rapidocr
        shrinks a longer detection copy to it), ``upscale_below_px``
        (smaller images are also looked at enlarged to this long side),
        ``box_score`` (the DB
        detector's box threshold), ``read_boxes`` (how many of the largest
        boxes are recognised; 0 reads none; the rest keep the detector's
        score), ``min_read_score`` (recognition confidence for a box to
        count as legible), ``reread_upscale`` (enlargement of the second
        reading pass), ``line_max_side_frac`` and ``line_min_aspect`` (an
        unreadable box this thin for the image, or this long and narrow, is
        print-shaped when at least ``line_min_sharp_frac`` of it are sharp
        strokes), ``paper_min_brightness`` and ``paper_min_contrast``
        (dark marks on a white backdrop are print-shaped too),
        ``colourless_min_frac`` (an image at least this share colourless is
        a scan or a grey photo: no colour says skin, so nothing is texture),
        ``print_score`` and ``texture_score``. Calibration table
        ``legible``: recognition confidence to probability.

    Raises
    ------
    ConfigError
        On an unknown or mistyped option.
    DetectorError
        If rapidocr cannot load its models.
    """

    name = "text.rapidocr"
    version = f"rapidocr-{metadata.version('rapidocr')}+{RUNTIME_VERSION}"
    kinds = frozenset({RegionKind.TEXT})
    defaults: ClassVar[OptionDefaults] = {
        "max_side_px": 960,
        "upscale_below_px": 960,
        "box_score": 0.5,
        "read_boxes": 8,
        "min_read_score": 0.5,
        "reread_upscale": 2.0,
        "line_max_side_frac": 0.15,
        "line_min_aspect": 2.5,
        "line_min_sharp_frac": 0.02,
        "paper_min_brightness": 240,
        "paper_min_contrast": 200,
        "colourless_min_frac": 0.95,
        "print_score": 0.35,
        "texture_score": 0.05,
    }
    calibration_defaults: ClassVar[dict[str, CalibrationPoints]] = {"legible": ((0.5, 0.6), (1.0, 0.95))}

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.options = read_options(settings or DetectorSettings(), self.defaults, self.name)
        self.calibration = read_calibration(settings or DetectorSettings(), self.calibration_defaults, self.name)
        params = {
            "Global.log_level": "error",
            "EngineConfig.onnxruntime.intra_op_num_threads": 1,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        try:
            # Recognition through rapidocr's engine; its detector is never built (see _find_lines).
            self._engine: Any = RapidOCR(params=params)
            det = self._engine.cfg.Det
            self._det_pre = DetPreProcess(int(self.options["max_side_px"]), "max", det.mean, det.std)
            self._det_post = DBPostProcess(
                thresh=det.thresh,
                box_thresh=self.options["box_score"],
                max_candidates=det.max_candidates,
                unclip_ratio=det.unclip_ratio,
                use_dilation=det.use_dilation,
                score_mode=det.score_mode,
            )
            model_name = f"{det.ocr_version.value}_det_{det.model_type.value}.onnx"  # PP-OCRv6_det_small.onnx
            model = resources.files("rapidocr").joinpath("models", model_name)
        except Exception as error:  # rapidocr raises its own and omegaconf errors; any means no model
            raise DetectorError(
                f"rapidocr cannot start: {error!r}", hint="reinstall rapidocr (its models ship in the wheel)"
            ) from error
        self._det_network = load_network(Path(str(model)))
        # rapidocr's own normalisation computes in float64 (its mean and std are float64 arrays): 3x slower.
        self._det_mean = np.asarray(self._det_pre.mean, dtype=np.float32)
        self._det_std = np.asarray(self._det_pre.std, dtype=np.float32)
        # The engine keeps per-call switches (use_det/use_rec) as state: one call at a time.
        self._lock = threading.Lock()

    def detect(self, image: RGBImage) -> list[Region]:
        """Return one region per text line, in ``image`` pixels, with what was read in the note."""
        height, width = image.shape[:2]
        # rapidocr's models were trained on OpenCV's BGR order.
        bgr = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), dtype=np.uint8)
        # The DB detector is scale-sensitive: small print needs enlarging, while large
        # handwriting is found at the native size. Small images are looked at both ways.
        factors = [1.0]
        if max(height, width) < self.options["upscale_below_px"]:
            factors.append(self.options["upscale_below_px"] / max(height, width))
        found: list[Region] = []
        with self._lock:
            for factor in factors:
                view = bgr
                if factor != 1.0:
                    size = (round(width * factor), round(height * factor))
                    view = np.ascontiguousarray(cv2.resize(bgr, size, interpolation=cv2.INTER_CUBIC), dtype=np.uint8)
                quads, scores = self._find_lines(view)
                for quad, score in zip(quads, scores, strict=True):
                    box = self._bounding_box(quad / factor, image.shape)
                    if not box.is_empty:
                        found.append(Region(RegionKind.TEXT, box, float(score), f"{self.name}@{self.version}"))
            merged = merge_regions(found, min_iou=0.5)
            readings = self._read(bgr, [region.box for region in merged])
        regions: list[Region] = []
        for index, region in enumerate(merged):
            score = region.score
            calibration: str | None = None
            raw_score: float | None = None
            if index in readings:
                text, read_score = readings[index]
                if is_legible(text, read_score, min_score=self.options["min_read_score"]):
                    # Readable text is always identifying: the table never goes below redaction.
                    calibration, raw_score = "legible", float(read_score)
                    score = self.calibration[calibration](raw_score)
                    note = f"text read as {text!r} (confidence {read_score:.2f})"
                elif self._is_print_shaped(region.box, bgr):
                    score = self.options["print_score"]
                    note = "print-shaped region, nothing legible at any reading pass" + (f" ({text!r})" if text else "")
                else:
                    score = self.options["texture_score"]
                    note = "nothing legible at any reading pass and not shaped like print: skin texture"
            else:
                note = "text-shaped region (not read: only the largest lines are read)"
            regions.append(Region(RegionKind.TEXT, region.box, score, region.source, note, calibration, raw_score))
        return regions

    def _is_print_shaped(self, box: Box, bgr: np.ndarray[Any, Any]) -> bool:
        """True for an unreadable box whose shape or backdrop says print.

        A line of print is thin for the image or long and narrow (rapidocr boxes
        are lines); a defocused page keeps its white paper around dark marks.
        Skin texture gives thick, square boxes on a skin-coloured backdrop.
        """
        short_side = min(box.width, box.height)
        aspect = max(box.width, box.height) / max(1, short_side)
        grey = cv2.cvtColor(np.ascontiguousarray(bgr[box.top : box.bottom, box.left : box.right]), cv2.COLOR_BGR2GRAY)
        is_line = short_side <= self.options["line_max_side_frac"] * min(bgr.shape[:2])
        if (is_line or aspect >= self.options["line_min_aspect"]) and sharp_share(grey) >= self.options[
            "line_min_sharp_frac"
        ]:
            return True
        if colourless_share(bgr) >= self.options["colourless_min_frac"]:
            return True
        low, high = np.percentile(grey, [5, 90])
        return bool(high >= self.options["paper_min_brightness"] and high - low >= self.options["paper_min_contrast"])

    def _find_lines(self, bgr: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], list[float]]:
        """PP-OCR's DB text detector on ``bgr``: line quadrilaterals in its pixels, and their scores.

        rapidocr's own pipeline does the same (its pre- and post-processing are used
        here) but runs the network through onnxruntime, four times slower on one
        core than :func:`~deid.detect.runtime.load_network`. Very flat strips (a
        wristband, a line of print cut out) are padded above and below first, as
        rapidocr does, because the detector needs some height.
        """
        height, width = bgr.shape[:2]
        pad = 0
        if height <= _MIN_DET_HEIGHT or width / height > _MAX_DET_ASPECT:
            pad = max(0, (max(int(width / _MAX_DET_ASPECT), _MIN_DET_HEIGHT) * 2 - height) // 2)
            bgr = cv2.copyMakeBorder(bgr, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        resized = self._det_pre.resize(bgr)
        if resized is None:
            return np.zeros((0, 4, 2)), []
        blob = ((resized.astype(np.float32) * np.float32(1 / 255) - self._det_mean) / self._det_std).transpose(2, 0, 1)[
            None
        ]
        (probability,) = self._det_network.run(None, {self._det_network.input_names[0]: blob})
        quads, scores = self._det_post(probability, (bgr.shape[0], bgr.shape[1]))
        quads = np.asarray(quads, dtype=float).reshape(-1, 4, 2)
        quads[:, :, 1] -= pad
        return quads, [float(score) for score in scores]

    @staticmethod
    def _bounding_box(quad: np.ndarray[Any, Any], shape: tuple[int, ...]) -> Box:
        left, top = np.floor(quad.min(axis=0))
        right, bottom = np.ceil(quad.max(axis=0))
        return Box(int(left), int(top), int(right), int(bottom)).clip(shape)

    def _read(self, view: RGBImage, boxes: list[Box]) -> dict[int, tuple[str, float]]:
        """Recognise the ``read_boxes`` largest boxes; index to (text, confidence).

        A box is read as found; when that is not legible, enlarged by
        ``reread_upscale``, then turned a quarter each way (vertical signatures
        and spines). The first legible reading wins, else the most confident.
        """
        count = int(self.options["read_boxes"])
        largest = sorted(range(len(boxes)), key=lambda i: boxes[i].area, reverse=True)[:count]
        readings: dict[int, tuple[str, float]] = {}
        floor = self.options["min_read_score"]
        for index in largest:
            box = boxes[index]
            if box.is_empty:
                continue
            crop = np.ascontiguousarray(view[box.top : box.bottom, box.left : box.right])
            best = ("", 0.0)
            for attempt in self._reading_passes(crop):
                reading = self._recognise(attempt)
                if is_legible(*reading, min_score=floor):
                    best = reading
                    break
                if reading[0] and (not best[0] or reading[1] > best[1]):
                    best = reading
            readings[index] = best
        return readings

    def _reading_passes(self, crop: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]]:
        factor = self.options["reread_upscale"]
        enlarged = cv2.resize(crop, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC) if factor > 1 else crop
        turns = (cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE)
        return [np.ascontiguousarray(p) for p in (crop, enlarged, *(cv2.rotate(crop, turn) for turn in turns))]

    def _recognise(self, crop: np.ndarray[Any, Any]) -> tuple[str, float]:
        result = self._engine(crop, use_det=False, use_cls=False, use_rec=True)
        texts = getattr(result, "txts", None) or ("",)
        confidences = getattr(result, "scores", None) or (0.0,)
        return str(texts[0]).strip(), float(confidences[0])


def sharp_share(grey: np.ndarray[Any, Any]) -> float:
    """Share of pixels whose Sobel gradient magnitude exceeds 200: the sharp strokes of print."""
    values = grey.astype(np.float32)
    magnitude = np.hypot(cv2.Sobel(values, cv2.CV_32F, 1, 0), cv2.Sobel(values, cv2.CV_32F, 0, 1))
    return float((magnitude > 200).mean()) if magnitude.size else 0.0


def colourless_share(bgr: np.ndarray[Any, Any]) -> float:
    """Share of an image's pixels with CIELAB chroma below 6 (on a 128-pixel copy): 1.0 for a grey scan."""
    small = cv2.resize(np.ascontiguousarray(bgr), (128, 128), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_BGR2LAB).astype(np.float32)
    return float((np.hypot(lab[..., 1] - 128, lab[..., 2] - 128) < 6).mean())


def is_legible(text: str, score: float, *, min_score: float) -> bool:
    """True when a recognised string looks like real text: confident and at least two letters or digits."""
    return score >= min_score and sum(character.isalnum() for character in text) >= 2
