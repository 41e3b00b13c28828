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
    What a *query* is searched with: the pHash of the whole image in the
    eight flips and rotations (the dihedral group), so a rotated or mirrored
    copy still lands on its reference, and of the trimmed image upright and
    mirrored (:data:`TRIM_TRANSFORMS`).
``features``
    ORB descriptors of the trimmed image (:mod:`deid.match.features`),
    strongest first: a query brings ``match.query_features``, an index keeps
    the first ``match.reference_features``. They find crops and screenshots
    that no window lines up with.

The pHash is bit-for-bit imagehash's ``phash`` (8x8 low frequencies of the DCT
of a 32x32 grey copy, thresholded at their median); the dihedral variants are
taken on the 32x32 copy, where flipping commutes with the symmetric resampling
filter, so eight variants cost one resize.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import imagehash
import numpy as np
import numpy.typing as npt
import scipy.fftpack
from PIL import Image

from deid.config import MatchSettings
from deid.errors import InputError
from deid.match.features import FEATURE_BYTES, Descriptors, extract_features, pack, unpack
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


TRIM_TRANSFORMS = ("identity", "flip")
"""The trimmed image (a caption, screenshot or border cut off) is searched upright and mirrored only.

A rotated screenshot is rare, and the local features, which do not care about rotation, find
it; the six views saved are 40 % of the hash lookups of a padded copy (at a million references,
p95 of the hash query 11.4 -> 8.0 ms)."""


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
    features
        Packed ORB descriptors (32 bytes each), strongest first; empty when
        ``match.features`` is off or the image is plain.
    """

    width: int
    height: int
    hashes: tuple[Fingerprint, ...]
    windows: tuple[Fingerprint, ...]
    views: tuple[Fingerprint, ...]
    features: bytes = b""

    @property
    def descriptors(self) -> Descriptors:
        """:attr:`features` as an ``n x 32`` ``uint8`` array."""
        return unpack(self.features)

    def for_reference(self, count: int) -> Fingerprints:
        """A copy keeping only the ``count`` strongest descriptors: what an index stores (and the ledger keeps)."""
        return replace(self, features=self.features[: count * FEATURE_BYTES])

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
            "features": base64.b64encode(self.features).decode("ascii"),
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
                features=_features(data.get("features", "")),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as error:
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


def _features(text: object) -> bytes:
    if not isinstance(text, str):
        raise TypeError("features must be base64 text")
    data = base64.b64decode(text, validate=True)
    unpack(data)  # refuse a partial descriptor
    return data


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
            trim = _scale_trim(found, tiny.shape, small.shape)
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
            if name == "trim" and transform_name not in TRIM_TRANSFORMS:
                continue
            views.append(
                Fingerprint(f"{PHASH}:{name}:{transform_name}", phash_hex(np.ascontiguousarray(transform(base))))
            )
    features = b""
    if settings.features:
        # Descriptors of the trimmed photo: padding and captions bring only the wrong corners.
        fx, fy = width / small.shape[1], height / small.shape[0]
        top, bottom = round(trim.top * fy), max(round(trim.bottom * fy), round(trim.top * fy) + 1)
        left, right = round(trim.left * fx), max(round(trim.right * fx), round(trim.left * fx) + 1)
        content_pixels = pixels[top:bottom, left:right]
        features = pack(
            extract_features(content_pixels, side_px=settings.feature_side_px, count=settings.query_features)
        )
    return Fingerprints(width, height, hashes, tuple(windows), tuple(views), features)


def _scale_trim(found: Box, tiny_shape: tuple[int, ...], small_shape: tuple[int, ...]) -> Box:
    """Map a content box found on the trim thumbnail onto the (larger) hashing thumbnail.

    Rounded inwards, so no line of the border comes back in, and each trimmed
    side then moves in one more line: the first line past a band is a blend of
    padding and photo, the thumbnail's box filter having straddled the edge.
    """
    scale_y, scale_x = small_shape[0] / tiny_shape[0], small_shape[1] / tiny_shape[1]
    return Box(
        int(np.ceil(found.left * scale_x)) + (found.left > 0),
        int(np.ceil(found.top * scale_y)) + (found.top > 0),
        int(np.floor(found.right * scale_x)) - (found.right < tiny_shape[1]),
        int(np.floor(found.bottom * scale_y)) - (found.bottom < tiny_shape[0]),
    ).clip(small_shape)


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


def find_content_box(
    small: RGBImage,
    *,
    tolerance_levels: int = 4,
    flat_levels: int = 1,
    clean_frac: float = 0.95,
    text_frac: float = 0.5,
    max_trim_frac: float = 0.45,
) -> Box:
    """The photo inside uniform borders, caption bands or screenshot padding.

    Padding is drawn, not photographed. From each edge inward, a line (row or
    column) is *clean* when at least ``clean_frac`` of its pixels are within
    ``tolerance_levels`` of the band's colour, and *crossed* when at least
    ``text_frac`` are (a line through a caption's or a status bar's text). A
    band ends at its last clean line before the first line that is not even
    crossed: text inside the band is passed over, and the band stops where the
    photo starts even when the photo's edge is close to the padding's colour
    (a night sky on a black border, a white wall under a white caption).
    A band counts only if one of its lines is flat to within ``flat_levels``
    of brightness, which drawn padding is and a photographed sky or backdrop
    is not. Sides are peeled in turn until nothing changes, so a toolbar and
    then the canvas behind it both come off.

    Parameters
    ----------
    small
        ``H x W x 3`` ``uint8`` RGB; a 128 px thumbnail is plenty.
    tolerance_levels
        Grey levels (per channel) a padding pixel may differ from the band's
        colour: JPEG ringing and the blur of downscaling.
    flat_levels
        Grey levels of brightness within which one line of a band must be flat.
    clean_frac, text_frac
        Fractions of a line's pixels that make it clean padding, or padding
        crossed by text.
    max_trim_frac
        Most of the height (for rows) or width (for columns) one side may lose.

    Returns
    -------
    Box
        The content rectangle; the whole image when nothing is trimmed.

    Notes
    -----
    Both ways to fail are mild. Text covering more than about half of its
    line (a caption as wide as the photo) is not crossed, so part of that
    band stays in. A photo whose own ground is flat in the padding's colour
    (a product shot on pure white) loses that ground as well, as it does
    with no padding, so a padded copy and its original still trim alike.
    """
    height, width = small.shape[:2]
    pixels = small.astype(np.int16)
    depth = functools.partial(
        _band_depth,
        tolerance_levels=tolerance_levels,
        flat_levels=flat_levels,
        clean_frac=clean_frac,
        text_frac=text_frac,
    )
    max_rows, max_columns = int(height * max_trim_frac), int(width * max_trim_frac)
    top, bottom, left, right = 0, height, 0, width
    for _ in range(4):  # a toolbar comes off in one round, the canvas behind it in the next
        before = (top, bottom, left, right)
        rows = pixels[top:bottom, left:right]
        top += depth(rows, max_rows - top)
        bottom -= depth(rows[::-1], max_rows - (height - bottom))
        columns = pixels[top:bottom, left:right].transpose(1, 0, 2)
        left += depth(columns, max_columns - left)
        right -= depth(columns[::-1], max_columns - (width - right))
        if (top, bottom, left, right) == before:
            break
    box = Box(left, top, right, bottom)
    if box.width < 16 or box.height < 16:
        return Box(0, 0, width, height)
    return box


def _band_depth(
    lines: npt.NDArray[np.int16],
    limit: int,
    *,
    tolerance_levels: int,
    flat_levels: int,
    clean_frac: float,
    text_frac: float,
) -> int:
    """How many of ``lines`` (outermost first, each ``N x 3``) are a band of padding, at most ``limit``.

    See :func:`find_content_box` for the rules.
    """
    lines = lines[: max(limit, 0)]
    if lines.shape[0] == 0 or lines.shape[1] == 0:
        return 0
    # The band's colour is that of the flattest of the outer three lines, the innermost on a tie:
    # a status bar's text, a JPEG edge or the blend with a band already peeled off may spoil the
    # outermost one.
    outer = lines[:3]
    medians = np.median(outer, axis=1)
    flatness = (np.abs(outer - medians[:, None, :]).max(axis=2) <= flat_levels).mean(axis=1)
    colour = medians[len(flatness) - 1 - int(np.argmax(flatness[::-1]))]
    close = (np.abs(lines - colour).max(axis=2) <= tolerance_levels).mean(axis=1)
    clean = close >= clean_frac
    crossed = close >= text_frac
    if clean[:3].any():
        crossed[: int(np.argmax(clean[:3]))] = True  # spoilt outer lines before a clean one
    stop = int(np.argmin(crossed)) if not crossed.all() else len(crossed)
    ends = np.flatnonzero(clean[:stop])
    if ends.size == 0 or not _has_flat_line(lines[ends], flat_levels=flat_levels, flat_frac=clean_frac):
        return 0
    return int(ends[-1]) + 1


def _has_flat_line(lines: npt.NDArray[np.int16], *, flat_levels: int, flat_frac: float) -> bool:
    """Whether one line's brightness is flat to ``flat_levels`` about its median: drawn, not photographed.

    Even a clear sky or a studio backdrop shades across a line by more than a
    level or two; JPEG keeps a drawn band flat away from its edges but for a
    level or two of chroma rounding, hence brightness and not colour.
    """
    brightness = lines.mean(axis=2)
    deviation = np.abs(brightness - np.median(brightness, axis=1, keepdims=True))
    return bool(((deviation <= flat_levels).mean(axis=1) >= flat_frac).any())
