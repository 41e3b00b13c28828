"""Safe image loading: allow-listed formats, size limits, orientation applied.

:func:`load_image` is the only way pixels enter deid. It checks the file size,
decides the format from the bytes alone (:func:`content_format`, the same
reader :func:`deid.metadata.inspect_metadata` uses, so the two never disagree
on what a file is), refuses anything off the allow-list, refuses images whose
header promises more pixels than ``input.max_pixels`` *before* decoding them,
turns the picture upright exactly once, refuses partial decodes (a TIFF strip
libtiff could not decode), converts colours to sRGB and flattens alpha, and
returns an upright ``uint8`` RGB array. Every refusal is an
:class:`~deid.errors.InputError` subclass that names the file and the problem.

The file name never decides anything: an allowed format under a name that
says otherwise (a WebP saved as ``.jpg``) is processed, and the loader's notes
say the name lied (``input.name_mismatch: ...``), so the ledger keeps it.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pillow_heif
from PIL import Image, ImageCms, UnidentifiedImageError

from deid.config import InputSettings
from deid.errors import DeidError, UnreadableImage, UnsupportedFormat
from deid.types import RGBImage
from deid.verify_bytes import sniff_format

logger = logging.getLogger(__name__)
pillow_heif.register_heif_opener()  # HEIC/HEIF from phones


# The names each format usually goes by. A name outside its format's set is not refused (the content
# decides); it is recorded as a note, because a lying name says something about where a file came from.
EXTENSIONS: dict[str, frozenset[str]] = {
    "JPEG": frozenset({".jpg", ".jpeg", ".jpe", ".jfif"}),
    "MPO": frozenset({".jpg", ".jpeg", ".mpo"}),
    "PNG": frozenset({".png"}),
    "WEBP": frozenset({".webp"}),
    "TIFF": frozenset({".tif", ".tiff"}),
    "HEIF": frozenset({".heic", ".heif", ".hif"}),
    "AVIF": frozenset({".avif"}),
    "GIF": frozenset({".gif"}),
}
# Pillow's name for a format -> the container :func:`deid.verify_bytes.sniff_format` reads from the
# bytes. Pillow picks its decoder by content too; the two must agree, or the file is refused.
CONTAINERS: dict[str, str] = {
    "JPEG": "JPEG",
    "MPO": "JPEG",
    "PNG": "PNG",
    "WEBP": "WEBP",
    "TIFF": "TIFF",
    "HEIF": "ISOBMFF",
    "AVIF": "ISOBMFF",
    "GIF": "GIF",
}
_SNIFFED_CONTAINERS = {"HEIF": "ISOBMFF", "AVIF": "ISOBMFF"}

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


def content_format(data: bytes, path: str | Path, *, hint: str = "") -> str:
    """Decide a file's format from its bytes alone; the one reader that says what a file is.

    Both :func:`load_image` and :func:`deid.metadata.inspect_metadata` call it,
    so a file one of them takes for an image the other does too (BigTIFF
    included). The name of the file is never consulted.

    Parameters
    ----------
    data
        The file's bytes.
    path
        The file, named in the error.
    hint
        What to tell the user if the bytes are not an image deid reads.

    Returns
    -------
    str
        ``JPEG``, ``PNG``, ``WEBP``, ``TIFF`` (classic or BigTIFF), ``HEIF``,
        ``AVIF`` or ``GIF``.

    Raises
    ------
    UnsupportedFormat
        If the bytes start like none of them (SVG, PDF, text, archives, other formats).
    """
    fmt = sniff_format(data)
    if fmt == "UNKNOWN":
        raise UnsupportedFormat(
            "not a recognised image format (not JPEG, PNG, WebP, TIFF, HEIF, AVIF or GIF)", path=path, hint=hint
        )
    return fmt


def load_image(path: str | Path, settings: InputSettings, *, data: bytes | None = None) -> LoadedImage:
    """Decode an image file into an upright sRGB ``uint8`` RGB array.

    Parameters
    ----------
    path
        The file; named in error messages, and its extension compared with the
        content (a mismatch is a note, never a refusal).
    settings
        The ``[input]`` configuration (allow-list and limits).
    data
        The file's bytes, if already read.

    Returns
    -------
    LoadedImage
        Pixels plus the format (by content), frame count, the EXIF orientation
        the file declared, and notes (``input.name_mismatch: ...`` when the
        name names another format, frames dropped, colours converted).

    Raises
    ------
    UnsupportedFormat
        If the bytes are not an allowed image format, or the decoder Pillow
        picks reads them as another container than their first bytes say.
    UnreadableImage
        If the file is empty, too large, a decompression bomb, truncated or
        corrupt (including a TIFF strip or tile the decoder could only decode
        in part), or holds several frames while ``input.multi_frame`` is ``"hold"``.

    Examples
    --------
    >>> from deid.config import load_config
    >>> image = load_image("photo.jpg", load_config().input)  # doctest: +SKIP
    >>> image.pixels.shape  # doctest: +SKIP
    (3024, 4032, 3)
    """
    file = Path(path)
    raw = read_bytes(file, settings) if data is None else data
    if not raw:
        raise UnreadableImage("file is empty (0 bytes)", path=file)
    sniffed = content_format(raw, file, hint=_allowed(settings))
    try:
        with warnings.catch_warnings(record=True) as caught, _libtiff_messages() as libtiff:
            # Decoder warnings (corrupt EXIF, odd chunks) become notes on the image, not stderr noise;
            # a decompression-bomb warning refuses the file.
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(raw))
            loaded = _decode(opened, file, settings, sniffed, libtiff)
        notes = tuple(
            dict.fromkeys(f"decoder warning: {w.message}" for w in caught if issubclass(w.category, UserWarning))
        )
        return LoadedImage(loaded.pixels, loaded.format, loaded.frames, loaded.orientation, loaded.notes + notes)
    except (UnreadableImage, UnsupportedFormat):
        raise
    except UnidentifiedImageError as error:
        raise UnreadableImage(
            f"starts like a {sniffed} file but no decoder can open it",
            path=file,
            hint="the file is truncated or corrupt",
        ) from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UnreadableImage(f"decompression bomb refused: {error}", path=file) from error
    except _DECODER_FAILURES as error:
        raise UnreadableImage(
            f"cannot decode image: {error}", path=file, hint="the file is truncated or corrupt"
        ) from error


# What Pillow's decoders raise on damaged bytes; RuntimeError is the AVIF decoder's (libavif) failure.
_DECODER_FAILURES = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    MemoryError,
    RuntimeError,
)


def _allowed(settings: InputSettings) -> str:
    return "allowed formats: " + ", ".join(settings.allowed_formats)


def _name_note(file: Path, fmt: str) -> str | None:
    """``input.name_mismatch: ...`` when the file's extension names another format than its content."""
    suffix = file.suffix.lower()
    if not suffix or suffix in EXTENSIONS.get(fmt, frozenset()):
        return None
    return f"input.name_mismatch: named {suffix}, content {fmt}"


def _decode(opened: Image.Image, file: Path, settings: InputSettings, sniffed: str, libtiff: list[str]) -> LoadedImage:
    fmt = (opened.format or "").upper()
    if CONTAINERS.get(fmt) != _SNIFFED_CONTAINERS.get(sniffed, sniffed):
        raise UnsupportedFormat(
            f"the bytes start like {sniffed} but decode as {fmt or 'unknown'}",
            path=file,
            hint="a file that is two formats at once is not processed",
        )
    if fmt not in settings.allowed_formats:
        raise UnsupportedFormat(f"format {fmt or 'unknown'} is not allowed", path=file, hint=_allowed(settings))
    notes: list[str] = []
    mismatch = _name_note(file, fmt)
    if mismatch:
        notes.append(mismatch)
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
    if frames > 1:
        if settings.multi_frame == "hold":
            raise UnreadableImage(f"image has {frames} frames", path=file, hint="input.multi_frame = 'hold'")
        notes.append(f"kept frame 1 of {frames}")
    opened.seek(0)
    declared, upright = _decode_upright(opened, notes)
    if libtiff:
        raise UnreadableImage(
            f"partial decode: libtiff could not decode all of the image ({libtiff[0]}"
            + (f"; {len(libtiff) - 1} more problem(s))" if len(libtiff) > 1 else ")"),
            path=file,
            hint="the file is damaged; part of the picture would be blank; ask for a new copy",
        )
    pixels = _to_srgb_rgb(upright, notes)
    return LoadedImage(np.ascontiguousarray(pixels), fmt, frames, declared, tuple(notes))


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _decode_upright(opened: Image.Image, notes: list[str]) -> tuple[int, Image.Image]:
    """Decode the pixels and turn them upright exactly once; return the declared orientation too.

    The one place orientation is decided. Some decoders turn the picture
    themselves and then drop the tag: Pillow's TIFF decoder (Pillow 13 does)
    transposes on load and deletes the orientation, libheif applies HEIF's
    ``irot``/``imir`` and pillow-heif resets EXIF to 1. Others leave it to the
    caller (JPEG, PNG, WebP, AVIF, whose ``irot``/``imir`` Pillow reports as an
    EXIF orientation). So the orientation is read *after* decoding: what is
    still declared then is what is still to do, whichever way a given Pillow
    version behaves. ``declared`` is what the file said before decoding.
    """
    declared = _orientation(opened)
    original = opened.info.get("original_orientation")  # pillow-heif: the EXIF value before it applied it
    if isinstance(original, int):
        declared = original
    opened.load()
    pending = _orientation(opened)
    if declared not in range(0, 9):
        notes.append(f"ignored invalid EXIF orientation {declared}")
    if pending not in _TRANSPOSE:
        return declared, opened
    transposed = opened.transpose(_TRANSPOSE[pending])
    transposed.info = dict(opened.info)  # keep the ICC profile for colour conversion
    return declared, transposed


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)
        return int(value) if isinstance(value, int) else 0
    except Exception:  # malformed EXIF must not stop the image; orientation is then unknown
        return 0


# --------------------------------------------------------------------------- libtiff messages
#
# libtiff's fax (CCITT) decoders, and some others, report a damaged strip ("Bad code word",
# "Premature EOF") through libtiff's error and warning handlers and then carry on: Pillow sees
# success and returns an image whose damaged strips are blank (white for a fax). By default those
# handlers print to stderr. deid installs its own handlers in the libtiff that Pillow's _imaging links
# (through ctypes): a message raised while load_image decodes, in the same thread, makes the image
# unreadable; a message at any other time is logged. Warnings that do not mean lost pixels (unknown
# tags, odd ASCII values) are only logged.

_LOST_PIXELS = re.compile(r"bad code word|premature e[oe][fl]|not enough data|corrupt|truncat|decoding error", re.I)
_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
_collecting = threading.local()


def _format_message(module: bytes | None, fmt: bytes | None, arguments: int | None) -> str:
    text = (fmt or b"").decode("utf-8", "replace")
    if _vsnprintf is not None and fmt:
        buffer = ctypes.create_string_buffer(512)
        _vsnprintf(buffer, len(buffer), fmt, ctypes.c_void_p(arguments))
        text = buffer.value.decode("utf-8", "replace")
    where = (module or b"").decode("utf-8", "replace")
    return f"{where}: {text}" if where else text


def _on_libtiff(severity: str, module: bytes | None, fmt: bytes | None, arguments: int | None) -> None:
    try:
        message = _format_message(module, fmt, arguments)
        sink: list[str] | None = getattr(_collecting, "messages", None)
        if sink is not None and (severity == "error" or _LOST_PIXELS.search(message)):
            sink.append(message)
        else:
            logger.debug("libtiff %s: %s", severity, message)
    except Exception:  # an exception must never cross back into C; the message is lost, not the process
        logger.exception("cannot record a libtiff %s", severity)


def _on_libtiff_error(module: bytes | None, fmt: bytes | None, arguments: int | None) -> None:
    _on_libtiff("error", module, fmt, arguments)


def _on_libtiff_warning(module: bytes | None, fmt: bytes | None, arguments: int | None) -> None:
    _on_libtiff("warning", module, fmt, arguments)


def _install_libtiff_handlers() -> bool:
    """Route libtiff's messages to deid; False when this Pillow build does not expose libtiff."""
    from PIL import _imaging

    try:
        library = ctypes.CDLL(_imaging.__file__)
        for name, handler in (("TIFFSetErrorHandler", _ERROR), ("TIFFSetWarningHandler", _WARNING)):
            setter = getattr(library, name)
            setter.restype = ctypes.c_void_p
            setter.argtypes = [_HANDLER]
            setter(handler)
    except (OSError, AttributeError):
        return False
    return True


def _find_vsnprintf() -> Callable[..., int] | None:
    try:
        function = ctypes.CDLL(None).vsnprintf
    except (OSError, AttributeError, TypeError):
        return None
    function.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
    function.restype = ctypes.c_int
    return cast("Callable[..., int]", function)


_vsnprintf = _find_vsnprintf()
_ERROR = _HANDLER(_on_libtiff_error)  # module-level: the callbacks must outlive every libtiff call
_WARNING = _HANDLER(_on_libtiff_warning)
HAS_LIBTIFF_MESSAGES = _install_libtiff_handlers()
if not HAS_LIBTIFF_MESSAGES:
    logger.warning("this Pillow build hides libtiff's messages: a TIFF decoded only in part cannot be detected")


@contextlib.contextmanager
def _libtiff_messages() -> Iterator[list[str]]:
    """Collect the libtiff messages that mean lost pixels, raised in this thread while the block runs."""
    messages: list[str] = []
    previous = getattr(_collecting, "messages", None)
    _collecting.messages = messages
    try:
        yield messages
    finally:
        _collecting.messages = previous


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
