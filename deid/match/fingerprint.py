"""Perceptual fingerprints of an upright RGB image, robust to the usual ways a photo is copied.

One call, :func:`compute_fingerprints`, hashes a small copy of the image once
and returns a :class:`Fingerprints` record that holds everything the index,
the duplicate clustering and the ledger need, all as hex:

``hashes``
    pHash, dHash, wHash and colour hash of the whole image (imagehash), kept
    for the ledger and for people comparing two images.
``windows``
    What a *reference* is indexed under: the 64-bit pHash of the whole image,
    of the image with uniform borders, captions and padding trimmed off, and
    of a grid of crops (``match.reference_crop_sides``, each on a ``match.reference_crop_grids`` grid).
    Indexing crops of the reference lets a query that is itself a crop land
    near one of them.
Near-flat windows and views (a blank wall, a uniform background) are left
out: their pHash is noise and would match every other flat image.

``views``
    What a *query* is searched with: the pHash of the whole and of the trimmed
    image, each in the eight flips and rotations (the dihedral group), so a
    rotated or mirrored copy still lands on its reference.

The pHash is bit-for-bit imagehash's ``phash`` (8x8 low frequencies of the DCT
of a 32x32 grey copy, thresholded at their median); the dihedral variants are
taken on the 32x32 copy, where flipping commutes with the symmetric resampling
filter, so eight variants cost one resize.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import imagehash
import numpy as np
import numpy.typing as npt
import scipy.fftpack
from PIL import Image

from deid.config import MatchSettings
from deid.errors import InputError
from deid.types import Box, Fingerprint, RGBImage

PHASH = "phash"
HASH_SIZE = 8
_DCT_SIDE = HASH_SIZE * 4
_TRIM_SIDE = 128
_MIN_PATCH_STD = 3.0  # grey levels; flatter windows are neither indexed nor searched

GrayArray = npt.NDArray[np.float64]
Transform = Callable[[npt.NDArray[np.generic]], npt.NDArray[np.generic]]

TRANSFORMS: dict[str, Transform] = {
    "identity": lambda a: a,
    "rot90": lambda a: np.rot90(a, 1),
    "rot180": lambda a: np.rot90(a, 2),
    "rot270": lambda a: np.rot90(a, 3),
    "flip": lambda a: a[:, ::-1],
    "flip_rot90": lambda a: np.rot90(a[:, ::-1], 1),
    "flip_rot180": lambda a: np.rot90(a[:, ::-1], 2),
    "flip_rot270": lambda a: np.rot90(a[:, ::-1], 3),
}
"""The eight flips and rotations, by name; each maps an ``H x W (x C)`` array.

A view named ``phash:<part>:<transform>`` means ``transform(query)`` looks
like the reference, so verification applies the same transform to the query.
"""


@dataclass(frozen=True, slots=True)
class Fingerprints:
    """Everything deid hashes from one image; serialisable as JSON of hex strings.

    Attributes
    ----------
    width, height
        Size of the upright image in pixels (used to keep the largest duplicate).
    hashes
        Whole-image ``phash``, ``dhash``, ``whash`` and ``colorhash``.
    windows
        pHashes a reference is indexed under (``phash:full``, ``phash:trim``, ``phash:crop…``).
    views
        pHashes a query searches with (``phash:<full|trim>:<transform>``).
    """

    width: int
    height: int
    hashes: tuple[Fingerprint, ...]
    windows: tuple[Fingerprint, ...]
    views: tuple[Fingerprint, ...]

    def hash(self, method: str) -> Fingerprint:
        """The whole-image hash of ``method``.

        Raises
        ------
        KeyError
            If no hash of that method was computed.
        """
        for fingerprint in self.hashes:
            if fingerprint.method == method:
                return fingerprint
        raise KeyError(method)

    def to_json(self) -> dict[str, object]:
        """JSON form for the ledger: ``{"width", "height", "hashes": {method: hex}, ...}``."""
        return {
            "width": self.width,
            "height": self.height,
            "hashes": {f.method: f.hex for f in self.hashes},
            "windows": {f.method: f.hex for f in self.windows},
            "views": {f.method: f.hex for f in self.views},
        }

    def dumps(self) -> str:
        """Compact JSON text of :meth:`to_json`."""
        return json.dumps(self.to_json(), separators=(",", ":"))

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Fingerprints:
        """Rebuild from :meth:`to_json` output.

        Raises
        ------
        InputError
            If a field is missing or has the wrong type.
        """
        try:
            return cls(
                width=int(data["width"]),  # type: ignore[call-overload]
                height=int(data["height"]),  # type: ignore[call-overload]
                hashes=_fingerprints(data["hashes"]),
                windows=_fingerprints(data["windows"]),
                views=_fingerprints(data["views"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(
                f"not a fingerprint record: {error}", hint="expected the output of Fingerprints.to_json"
            ) from error


def _fingerprints(table: object) -> tuple[Fingerprint, ...]:
    if not isinstance(table, Mapping):
        raise TypeError("expected a table of method: hex")
    out = []
    for method, hex_value in table.items():
        int(str(hex_value), 16)  # refuse anything that is not hex
        out.append(Fingerprint(str(method), str(hex_value)))
    return tuple(out)


def compute_fingerprints(pixels: RGBImage, settings: MatchSettings) -> Fingerprints:
    """Fingerprint an upright RGB image for the index, duplicate search and the ledger.

    Parameters
    ----------
    pixels
        ``H x W x 3`` ``uint8`` RGB, upright (as :func:`deid.io.load_image` returns it).
        A detection-size copy is enough; hashes are taken on a copy at most
        ``match.thumbnail_side_px`` long.
    settings
        The ``[match]`` configuration.

    Returns
    -------
    Fingerprints
        Whole-image hashes, reference windows and query views, as hex.

    Raises
    ------
    InputError
        If ``pixels`` is not a non-empty ``H x W x 3`` ``uint8`` array.

    Examples
    --------
    >>> import numpy as np
    >>> from deid.config import load_config
    >>> image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    >>> prints = compute_fingerprints(image, load_config().match)
    >>> prints.hash("phash").method, len(prints.hash("phash").hex)
    ('phash', 16)
    """
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8 or pixels.size == 0:
        raise InputError(f"expected an H x W x 3 uint8 image, got {pixels.dtype} {pixels.shape}")
    height, width = int(pixels.shape[0]), int(pixels.shape[1])
    small = thumbnail(pixels, settings.thumbnail_side_px)
    small_image = Image.fromarray(small)
    gray = small_image.convert("L")
    hashes = (
        Fingerprint("phash", str(imagehash.phash(gray))),
        Fingerprint("dhash", str(imagehash.dhash(gray))),
        Fingerprint("whash", str(imagehash.whash(gray))),
        Fingerprint("colorhash", str(imagehash.colorhash(small_image))),
    )
    parts: dict[str, Image.Image] = {"full": gray}
    whole = Box(0, 0, small.shape[1], small.shape[0])
    trim = whole
    if settings.trim_borders:
        # Borders are found on a 128 px copy (a quarter of the work) and mapped back.
        tiny = thumbnail(small, _TRIM_SIDE)
        found = find_content_box(tiny)
        if found != Box(0, 0, tiny.shape[1], tiny.shape[0]):
            factor = small.shape[1] / tiny.shape[1]
            # Rounded inwards, so no line of the border comes back in.
            trim = Box(
                int(np.ceil(found.left * factor)),
                int(np.ceil(found.top * factor)),
                int(np.floor(found.right * factor)),
                int(np.floor(found.bottom * factor)),
            ).clip(small.shape)
    if trim != whole:
        parts["trim"] = gray.crop((trim.left, trim.top, trim.right, trim.bottom))
    windows = [
        Fingerprint(f"{PHASH}:{name}", phash_hex(pixels32))
        for name, part in parts.items()
        if _is_informative(pixels32 := _dct_input(part))
    ]
    content = parts.get("trim", gray)
    for side, grid in zip(settings.reference_crop_sides, settings.reference_crop_grids, strict=True):
        for row, top in enumerate(_offsets(side, grid)):
            for column, left in enumerate(_offsets(side, grid)):
                box = (
                    round(left * content.width),
                    round(top * content.height),
                    max(round((left + side) * content.width), round(left * content.width) + 1),
                    max(round((top + side) * content.height), round(top * content.height) + 1),
                )
                crop = _dct_input(content.crop(box))
                if _is_informative(crop):
                    windows.append(Fingerprint(f"{PHASH}:crop{side:g}:{row}{column}", phash_hex(crop)))
    views = []
    for name, part in parts.items():
        base = _dct_input(part)
        if not _is_informative(base):
            continue
        for transform_name, transform in TRANSFORMS.items():
            views.append(
                Fingerprint(f"{PHASH}:{name}:{transform_name}", phash_hex(np.ascontiguousarray(transform(base))))
            )
    return Fingerprints(width, height, hashes, tuple(windows), tuple(views))


def _offsets(side: float, grid: int) -> list[float]:
    if grid == 1:
        return [(1.0 - side) / 2.0]
    return [float(x) for x in np.linspace(0.0, 1.0 - side, grid)]


def thumbnail(pixels: RGBImage, max_side_px: int) -> RGBImage:
    """A copy at most ``max_side_px`` long (area-averaged), or the image itself when smaller."""
    height, width = pixels.shape[:2]
    scale = max_side_px / max(height, width)
    if scale >= 1.0:
        return pixels
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BOX), dtype=np.uint8)


def _dct_input(gray: Image.Image) -> GrayArray:
    """The 32x32 grey copy imagehash's pHash takes its DCT of."""
    return np.asarray(gray.resize((_DCT_SIDE, _DCT_SIDE), Image.Resampling.LANCZOS), dtype=np.float64)


def _is_informative(pixels32: GrayArray) -> bool:
    """False for a near-flat patch, whose pHash is noise that matches every other flat patch."""
    return float(pixels32.std()) >= _MIN_PATCH_STD


def phash_hex(pixels32: GrayArray) -> str:
    """imagehash's pHash of a 32x32 grey array, as 16 hex digits."""
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels32, axis=0), axis=1)
    low = dct[:HASH_SIZE, :HASH_SIZE]
    bits = (low > np.median(low)).ravel()
    return f"{int(np.packbits(bits).view('>u8')[0]):016x}"


def find_content_box(small: RGBImage, *, tolerance: int = 10, min_background_frac: float = 0.7) -> Box:
    """The photo inside uniform borders, caption bands or screenshot padding.

    From each edge inward, a line (row or column) counts as background while
    at least ``min_background_frac`` of its pixels are within ``tolerance`` of
    the colour of the outermost line; a caption's text rows pass because text
    covers little of a line. An edge is trimmed only when its outermost line
    is itself mostly uniform, and never by more than 45 % of the image.

    Returns
    -------
    Box
        The content rectangle; the whole image when nothing is trimmed.
    """
    height, width = small.shape[:2]
    pixels = small.astype(np.int16)

    def depth(lines: npt.NDArray[np.int16], limit: int) -> int:
        lines = lines[: limit + 1]
        if lines.shape[0] == 0 or lines.shape[1] == 0:
            return 0
        # The border colour is that of the most uniform of the outer three lines (a status bar's
        # text or a JPEG edge may spoil the outermost one).
        outer = lines[:3]
        spread = np.abs(outer - np.median(outer, axis=1, keepdims=True)).max(axis=2).mean(axis=1)
        edge = np.median(outer[int(np.argmin(spread))], axis=0)
        close = np.abs(lines - edge).max(axis=2) <= tolerance
        fraction = close.mean(axis=1)
        if fraction[:3].max() < 0.95:  # not a border: the photo reaches this edge
            return 0
        background = fraction >= min_background_frac
        background[: int(np.argmax(fraction[:3] >= 0.95))] = True  # a spoilt outer line or two
        count = int(np.argmin(background)) if not background.all() else len(background)
        # Ignore a trim of a line or two: JPEG edges and vignetting, not a border.
        return min(count, limit) if count >= 2 else 0

    # Rows first over the full width, then columns over the rows kept, then rows again over
    # the columns kept: a letterbox's padding must not count against the photo's side edges.
    top, bottom, left, right = 0, height, 0, width
    for _ in range(2):
        rows = pixels[top:bottom, left:right]
        top += depth(rows, int(height * 0.45) - top)
        bottom -= depth(rows[::-1], int(height * 0.45) - (height - bottom))
        columns = pixels[top:bottom, left:right].transpose(1, 0, 2)
        left += depth(columns, int(width * 0.45) - left)
        right -= depth(columns[::-1], int(width * 0.45) - (width - right))
    box = Box(left, top, right, bottom)
    if box.width < 16 or box.height < 16:
        return Box(0, 0, width, height)
    return box
