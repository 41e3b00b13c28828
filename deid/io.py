"""Safe image loading: allow-listed formats, size limits, orientation applied.

:func:`load_image` is the only way pixels enter deid. It checks the file size,
sniffs the real format from the bytes (never trusting the extension), refuses
anything off the allow-list, refuses images whose header promises more pixels
than ``input.max_pixels`` *before* decoding them, applies the EXIF orientation,
converts colours to sRGB and flattens alpha, and returns an upright ``uint8``
RGB array. Every refusal is an :class:`~deid.errors.InputError` subclass that
names the file and the problem.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image, ImageCms, UnidentifiedImageError

from deid.config import InputSettings
from deid.errors import DeidError, UnreadableImage, UnsupportedFormat
from deid.types import RGBImage

logger = logging.getLogger(__name__)
pillow_heif.register_heif_opener()  # HEIC/HEIF from phones


# Extensions a contributor may use for each format, so a lying name is caught.
EXTENSIONS: dict[str, frozenset[str]] = {
    "JPEG": frozenset({".jpg", ".jpeg", ".jpe", ".jfif"}),
    "MPO": frozenset({".jpg", ".jpeg", ".mpo"}),
    "PNG": frozenset({".png"}),
    "WEBP": frozenset({".webp"}),
    "TIFF": frozenset({".tif", ".tiff"}),
    "HEIF": frozenset({".heic", ".heif", ".hif"}),
    "GIF": frozenset({".gif"}),
}

_SRGB = ImageCms.createProfile("sRGB")


@dataclass(frozen=True, slots=True)
class LoadedImage:
    """An upright RGB image and what loading it involved."""

    pixels: RGBImage
    format: str
    frames: int
    orientation: int
    notes: tuple[str, ...] = ()

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.pixels.shape[1])


def read_bytes(path: str | Path, settings: InputSettings) -> bytes:
    """Read a file, refusing empty and over-size ones.

    Raises
    ------
    UnreadableImage
        If the file cannot be read, is empty or is larger than ``input.max_file_bytes``.
    """
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > settings.max_file_bytes:
            raise UnreadableImage(
                f"file is {size} bytes, over the {settings.max_file_bytes}-byte limit",
                path=file,
                hint="raise input.max_file_bytes if this is a genuine photo",
            )
        data = file.read_bytes()
    except OSError as error:
        raise UnreadableImage(f"cannot read file: {error.strerror}", path=file) from error
    if not data:
        raise UnreadableImage("file is empty (0 bytes)", path=file)
    return data


def load_image(path: str | Path, settings: InputSettings, *, data: bytes | None = None) -> LoadedImage:
    """Decode an image file into an upright sRGB ``uint8`` RGB array.

    Parameters
    ----------
    path
        The file; also used in error messages and to check the extension.
    settings
        The ``[input]`` configuration (allow-list and limits).
    data
        The file's bytes, if already read.

    Returns
    -------
    LoadedImage
        Pixels plus the detected format, frame count and EXIF orientation.

    Raises
    ------
    UnsupportedFormat
        If the bytes are not an allowed image format, or the extension names another format.
    UnreadableImage
        If the file is empty, too large, a decompression bomb, truncated or corrupt,
        or holds several frames while ``input.multi_frame`` is ``"hold"``.

    Examples
    --------
    >>> from deid.config import load_config
    >>> image = load_image("photo.jpg", load_config().input)  # doctest: +SKIP
    >>> image.pixels.shape  # doctest: +SKIP
    (3024, 4032, 3)
    """
    file = Path(path)
    raw = read_bytes(file, settings) if data is None else data
    try:
        with warnings.catch_warnings(record=True) as caught:
            # Decoder warnings (corrupt EXIF, odd chunks) become notes on the image, not stderr noise;
            # a decompression-bomb warning refuses the file.
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(raw))
            loaded = _decode(opened, file, settings)
        notes = tuple(
            dict.fromkeys(f"decoder warning: {w.message}" for w in caught if issubclass(w.category, UserWarning))
        )
        return LoadedImage(loaded.pixels, loaded.format, loaded.frames, loaded.orientation, loaded.notes + notes)
    except (UnreadableImage, UnsupportedFormat):
        raise
    except UnidentifiedImageError as error:
        raise UnsupportedFormat("not a recognised image format", path=file, hint=_allowed(settings)) from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UnreadableImage(f"decompression bomb refused: {error}", path=file) from error
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, MemoryError) as error:
        raise UnreadableImage(
            f"cannot decode image: {error}", path=file, hint="the file is truncated or corrupt"
        ) from error


def _allowed(settings: InputSettings) -> str:
    return "allowed formats: " + ", ".join(settings.allowed_formats)


def _decode(opened: Image.Image, file: Path, settings: InputSettings) -> LoadedImage:
    fmt = (opened.format or "").upper()
    if fmt not in settings.allowed_formats:
        raise UnsupportedFormat(f"format {fmt or 'unknown'} is not allowed", path=file, hint=_allowed(settings))
    suffix = file.suffix.lower()
    if suffix and suffix not in EXTENSIONS.get(fmt, frozenset()):
        raise UnsupportedFormat(
            f"content is {fmt} but the name ends in {suffix}",
            path=file,
            hint="rename the file after checking where it came from",
        )
    width, height = opened.size
    if width <= 0 or height <= 0:
        raise UnreadableImage("image has no pixels", path=file)
    if width * height > settings.max_pixels:
        raise UnreadableImage(
            f"{width}x{height} is over the {settings.max_pixels}-pixel limit (possible decompression bomb)",
            path=file,
            hint="raise input.max_pixels if this is a genuine photo",
        )
    frames = int(getattr(opened, "n_frames", 1) or 1)
    notes: list[str] = []
    if frames > 1:
        if settings.multi_frame == "hold":
            raise UnreadableImage(f"image has {frames} frames", path=file, hint="input.multi_frame = 'hold'")
        notes.append(f"kept frame 1 of {frames}")
    opened.seek(0)
    orientation = _orientation(opened)
    opened.load()
    upright = _apply_orientation(opened, orientation, file)
    if orientation not in range(0, 9):
        notes.append(f"ignored invalid EXIF orientation {orientation}")
    pixels = _to_srgb_rgb(upright, notes)
    return LoadedImage(np.ascontiguousarray(pixels), fmt, frames, orientation, tuple(notes))


def _apply_orientation(image: Image.Image, orientation: int, file: Path) -> Image.Image:
    """Rotate/flip to upright by EXIF orientation 2..8; 0, 1 and invalid values leave it as stored."""
    if orientation not in range(2, 9):
        return image
    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }[orientation]
    transposed = image.transpose(method)
    transposed.info = dict(image.info)  # keep the ICC profile for colour conversion
    return transposed


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)
        return int(value) if isinstance(value, int) else 0
    except Exception:  # malformed EXIF must not stop the image; orientation is then unknown
        return 0


def _to_srgb_rgb(image: Image.Image, notes: list[str]) -> RGBImage:
    """Convert any mode to 8-bit sRGB RGB, using an embedded ICC profile when present."""
    icc = image.info.get("icc_profile")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    if image.mode in ("LA", "RGBA", "La", "RGBa"):
        # Flatten onto white; what is transparent stays invisible in the release.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
        notes.append("flattened alpha onto white")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            mode = image.mode if image.mode in ("RGB", "CMYK", "L") else "RGB"
            if image.mode != mode:
                image = image.convert(mode)
            converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode="RGB")
            if converted is not None:
                image = converted
                notes.append("converted colours from the embedded ICC profile to sRGB")
        except (ImageCms.PyCMSError, OSError, ValueError) as error:
            notes.append(f"ignored unusable ICC profile ({error})")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a hidden ``.partial`` file and a rename.

    A reader (or a crash) never sees half a file: the target either keeps its
    old content or has all of the new.

    Raises
    ------
    DeidError
        If the folder or file cannot be written; the message names the file.
    """
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        os.replace(partial, target)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise DeidError(
            f"cannot write file: {error.strerror}", path=target, hint="check the workspace folder"
        ) from error
    return target
