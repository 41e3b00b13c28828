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

A box whose content reads as text keeps the detector's score (redacted by the
default policy); a text-shaped box nothing legible could be read from scores
``unreadable_score`` (held for review): skin texture, hair and foliage
sometimes look like print to the detector. An unreadable box no print could
make (thick relative to the image, nearly square, and almost free of sharp
edges) scores ``blob_score``, below the default review band: smooth skin
gradients and rashes produce exactly those.
"""

from __future__ import annotations

import threading
from importlib import metadata
from typing import Any, ClassVar

import cv2
import numpy as np
from rapidocr import RapidOCR

from deid.config import DetectorSettings
from deid.detect import OptionDefaults, read_options
from deid.detect.geometry import merge_regions
from deid.errors import DetectorError
from deid.types import Box, Region, RegionKind, RGBImage


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
        boxes are recognised; 0 reads none), ``min_read_score`` (recognition
        confidence for a box to count as legible) and ``unreadable_score``
        (score of a box nothing legible was read from).

    Raises
    ------
    ConfigError
        On an unknown or mistyped option.
    DetectorError
        If rapidocr cannot load its models.
    """

    name = "text.rapidocr"
    version = f"rapidocr-{metadata.version('rapidocr')}"
    kinds = frozenset({RegionKind.TEXT})
    defaults: ClassVar[OptionDefaults] = {
        "max_side_px": 960,
        "upscale_below_px": 960,
        "box_score": 0.5,
        "read_boxes": 8,
        "min_read_score": 0.5,
        "unreadable_score": 0.4,
        "blob_side_frac": 0.15,
        "blob_max_aspect": 2.5,
        "blob_score": 0.2,
        "blob_max_edge_frac": 0.01,
    }

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.options = read_options(settings or DetectorSettings(), self.defaults, self.name)
        params = {
            "Global.log_level": "error",
            "Det.limit_side_len": int(self.options["max_side_px"]),
            "Det.limit_type": "max",
            "Det.box_thresh": self.options["box_score"],
            "EngineConfig.onnxruntime.intra_op_num_threads": 1,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        try:
            self._engine: Any = RapidOCR(params=params)
        except Exception as error:  # rapidocr raises its own and omegaconf errors; any means no model
            raise DetectorError(
                f"rapidocr cannot start: {error!r}", hint="reinstall rapidocr (its models ship in the wheel)"
            ) from error
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
                result = self._engine(view, use_det=True, use_cls=False, use_rec=False)
                if result.boxes is None:
                    continue
                for quad, score in zip(np.asarray(result.boxes, dtype=float), result.scores, strict=True):
                    box = self._bounding_box(quad / factor, image.shape)
                    if not box.is_empty:
                        found.append(Region(RegionKind.TEXT, box, float(score), f"{self.name}@{self.version}"))
            merged = merge_regions(found, min_iou=0.5)
            readings = self._read(bgr, [region.box for region in merged])
        regions: list[Region] = []
        for index, region in enumerate(merged):
            score = region.score
            if index in readings:
                text, read_score = readings[index]
                if is_legible(text, read_score, min_score=self.options["min_read_score"]):
                    note = f"text read as {text!r} (confidence {read_score:.2f})"
                elif self._is_featureless_blob(region.box, bgr):
                    score = min(score, self.options["blob_score"])
                    note = "large, smooth, blob-shaped region with nothing legible: skin, not a line of text"
                else:
                    score = min(score, self.options["unreadable_score"])
                    note = "text-shaped region, nothing legible read" + (f" ({text!r})" if text else "")
            else:
                note = "text-shaped region (not read: only the largest lines are read)"
            regions.append(Region(RegionKind.TEXT, region.box, score, region.source, note))
        return regions

    def _is_featureless_blob(self, box: Box, bgr: np.ndarray[Any, Any]) -> bool:
        """True for a box no print has: thick, nearly square, and with almost no sharp edges.

        The DB detector answers smooth skin gradients and rashes with such boxes; a
        line of print is long and thin (rapidocr boxes are lines), and a grid of
        print (a crossword, a form) is full of sharp edges. Measured on devdata and
        the sample batch: smooth skin blobs have <= 0.4% of pixels with a Sobel
        gradient above 100, print and tattoos 6-38%.
        """
        short_side = min(box.width, box.height)
        aspect = max(box.width, box.height) / max(1, short_side)
        if (
            short_side <= self.options["blob_side_frac"] * min(bgr.shape[:2])
            or aspect >= self.options["blob_max_aspect"]
        ):
            return False
        grey = cv2.cvtColor(np.ascontiguousarray(bgr[box.top : box.bottom, box.left : box.right]), cv2.COLOR_BGR2GRAY)
        grey = grey.astype(np.float32)
        magnitude = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
        return bool((magnitude > 100).mean() < self.options["blob_max_edge_frac"])

    @staticmethod
    def _bounding_box(quad: np.ndarray[Any, Any], shape: tuple[int, ...]) -> Box:
        left, top = np.floor(quad.min(axis=0))
        right, bottom = np.ceil(quad.max(axis=0))
        return Box(int(left), int(top), int(right), int(bottom)).clip(shape)

    def _read(self, view: RGBImage, boxes: list[Box]) -> dict[int, tuple[str, float]]:
        """Recognise the ``read_boxes`` largest boxes; index to (text, confidence)."""
        count = int(self.options["read_boxes"])
        largest = sorted(range(len(boxes)), key=lambda i: boxes[i].area, reverse=True)[:count]
        readings: dict[int, tuple[str, float]] = {}
        for index in largest:
            box = boxes[index]
            if box.is_empty:
                continue
            crop = np.ascontiguousarray(view[box.top : box.bottom, box.left : box.right])
            result = self._engine(crop, use_det=False, use_cls=False, use_rec=True)
            texts = getattr(result, "txts", None) or ("",)
            confidences = getattr(result, "scores", None) or (0.0,)
            readings[index] = (str(texts[0]).strip(), float(confidences[0]))
        return readings


def is_legible(text: str, score: float, *, min_score: float) -> bool:
    """True when a recognised string looks like real text: confident and at least two letters or digits."""
    return score >= min_score and sum(character.isalnum() for character in text) >= 2
