"""Before/after previews for reviewers: the original with its regions drawn, beside the staged result.

A preview shows the original, so it is as private as the original: write it
into the private workspace only, never into a release. The pipeline writes one
for every image that is held or altered (:func:`is_preview_needed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from deid.detect import make_detection_copy
from deid.errors import DeidError
from deid.png import encode_png_fast
from deid.types import Action, Box, Decision, Region, RegionKind, RGBImage

KIND_COLOURS: dict[RegionKind, tuple[int, int, int]] = {
    RegionKind.FACE: (230, 40, 40),
    RegionKind.TEXT: (40, 110, 230),
    RegionKind.TATTOO: (200, 40, 200),
    RegionKind.PERSON: (240, 150, 20),
    RegionKind.SENSITIVE_BODY: (230, 210, 20),
}
"""Box colour (RGB) per region kind."""
CROP_COLOUR = (40, 200, 80)
_BACKGROUND = (32, 32, 32)
_TEXT_COLOUR = (235, 235, 235)
# Layout only: panels are scaled to this height so labels stay readable.
_PANEL_HEIGHT_PX = 640
_GAP_PX = 16
_HEADER_PX = 56
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def is_preview_needed(decision: Decision) -> bool:
    """True when an image is held, excluded or altered, so a person may want to see it."""
    return decision.action is not Action.KEEP


def render_preview(
    original: RGBImage,
    regions: Sequence[Region],
    decision: Decision,
    staged: RGBImage | None,
) -> RGBImage:
    """Draw the preview: original with boxes (left), staged result (right), decision on top.

    Parameters
    ----------
    original
        The upright full-resolution original.
    regions
        Every region found (drawn thin); those in ``decision.regions`` are drawn thick.
    decision
        The policy's decision; its crop is drawn in green and its first reasons printed.
    staged
        The staged result (:func:`deid.redact.render_decision`), or ``None``
        when nothing was staged (then the right panel says so).

    Returns
    -------
    RGBImage
        The preview as a new ``uint8`` RGB array.
    """
    scale = _PANEL_HEIGHT_PX / max(1, original.shape[0])
    left = _resize(original, scale)
    applied = set(decision.regions)
    # A reviewer's decision may name regions the detectors did not find; draw those too.
    for region in dict.fromkeys([*regions, *decision.regions]):
        colour = KIND_COLOURS.get(region.kind, (255, 255, 255))
        _draw_box(left, region.box, scale, colour, f"{region.kind} {region.score:.2f}", thick=region in applied)
    if decision.crop is not None:
        _draw_box(left, decision.crop, scale, CROP_COLOUR, "crop", thick=True)
    if staged is not None:
        right = _resize(staged, _PANEL_HEIGHT_PX / max(1, staged.shape[0]))
    else:
        right = np.full((_PANEL_HEIGHT_PX, max(1, left.shape[1] // 2), 3), _BACKGROUND, dtype=np.uint8)
        cv2.putText(right, "nothing staged", (10, _PANEL_HEIGHT_PX // 2), _FONT, 0.6, _TEXT_COLOUR, 1, cv2.LINE_AA)
    width = left.shape[1] + _GAP_PX + right.shape[1]
    canvas = np.full((_HEADER_PX + _PANEL_HEIGHT_PX, width, 3), _BACKGROUND, dtype=np.uint8)
    canvas[_HEADER_PX : _HEADER_PX + left.shape[0], : left.shape[1]] = left
    canvas[_HEADER_PX : _HEADER_PX + right.shape[0], left.shape[1] + _GAP_PX :] = right
    lines = [f"{decision.action}", *decision.reasons[:1]]
    for number, line in enumerate(lines):
        text = line.encode("ascii", "replace").decode("ascii")
        cv2.putText(canvas, text[:160], (8, 20 + 24 * number), _FONT, 0.5, _TEXT_COLOUR, 1, cv2.LINE_AA)
    return canvas


def write_preview(
    original: RGBImage,
    regions: Sequence[Region],
    decision: Decision,
    staged: RGBImage | None,
    path: str | Path,
) -> Path:
    """Write a before/after preview PNG (see :func:`render_preview`) to ``path``.

    Parameters
    ----------
    original, regions, decision, staged
        As for :func:`render_preview`.
    path
        Where to write, inside the private workspace; parent folders are created.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    DeidError
        If the file cannot be written.

    Examples
    --------
    >>> write_preview(pixels, regions, decision, staged, workspace / "previews" / "abc.png")  # doctest: +SKIP
    PosixPath('workspace/previews/abc.png')
    """
    return _write_png(render_preview(original, regions, decision, staged), path)


def render_match_preview(query: RGBImage, reference: RGBImage | None, lines: Sequence[str]) -> RGBImage:
    """The contribution (left) beside the reference it matched (right), with the verdict on top."""
    left = _resize(query, _PANEL_HEIGHT_PX / max(1, query.shape[0]))
    if reference is not None:
        right = _resize(reference, _PANEL_HEIGHT_PX / max(1, reference.shape[0]))
    else:
        right = np.full((_PANEL_HEIGHT_PX, max(1, left.shape[1] // 2), 3), _BACKGROUND, dtype=np.uint8)
        cv2.putText(
            right, "reference not available", (10, _PANEL_HEIGHT_PX // 2), _FONT, 0.6, _TEXT_COLOUR, 1, cv2.LINE_AA
        )
    canvas = np.full(
        (_HEADER_PX + _PANEL_HEIGHT_PX, left.shape[1] + _GAP_PX + right.shape[1], 3), _BACKGROUND, dtype=np.uint8
    )
    canvas[_HEADER_PX : _HEADER_PX + left.shape[0], : left.shape[1]] = left
    canvas[_HEADER_PX : _HEADER_PX + right.shape[0], left.shape[1] + _GAP_PX :] = right
    for number, line in enumerate(list(lines)[:2]):
        text = line.encode("ascii", "replace").decode("ascii")
        cv2.putText(canvas, text[:160], (8, 20 + 24 * number), _FONT, 0.5, _TEXT_COLOUR, 1, cv2.LINE_AA)
    return canvas


def write_match_preview(query: RGBImage, reference: RGBImage | None, lines: Sequence[str], path: str | Path) -> Path:
    """Write :func:`render_match_preview` as a PNG in the private workspace, for a reviewer.

    Raises
    ------
    DeidError
        If the file cannot be written.
    """
    return _write_png(render_match_preview(query, reference, lines), path)


def _write_png(pixels: RGBImage, path: str | Path) -> Path:
    """Write a preview PNG, creating folders; a failure is a :class:`DeidError` naming the file."""
    target = Path(path)
    data = encode_png_fast(np.ascontiguousarray(pixels))  # private previews: fast lossless, like the release files
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    except OSError as error:
        raise DeidError(
            f"cannot write preview: {error.strerror}", path=target, hint="check the workspace folder"
        ) from error
    return target


def _resize(image: RGBImage, scale: float) -> RGBImage:
    height, width = image.shape[:2]
    if scale < 1:  # the detection copy's shrink: halving first is much faster on full-size photos
        side = max(1, round(max(height, width) * scale))
        return make_detection_copy(np.ascontiguousarray(image), max_side_px=side)[0]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.ascontiguousarray(cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_LINEAR))


def _draw_box(
    panel: RGBImage, box: Box, scale: float, colour: tuple[int, int, int], label: str, *, thick: bool
) -> None:
    """Draw ``box`` (in original pixels) on ``panel`` with a label above it."""
    top_left = (round(box.left * scale), round(box.top * scale))
    bottom_right = (max(top_left[0], round(box.right * scale) - 1), max(top_left[1], round(box.bottom * scale) - 1))
    cv2.rectangle(panel, top_left, bottom_right, colour, 3 if thick else 1)
    text_y = top_left[1] - 6 if top_left[1] > 18 else top_left[1] + 20  # inside when there is no room above
    cv2.putText(panel, label, (top_left[0] + 2, text_y), _FONT, 0.5, colour, 1 if not thick else 2, cv2.LINE_AA)


__all__ = [
    "CROP_COLOUR",
    "KIND_COLOURS",
    "is_preview_needed",
    "render_match_preview",
    "render_preview",
    "write_match_preview",
    "write_preview",
]
