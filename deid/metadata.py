"""Metadata: report what an original carries, and write release files that carry nothing.

Three jobs, one module:

* :func:`inspect_metadata` lists every metadata container in an original
  (EXIF IFDs with GPS, Interop, MakerNote and the IFD1 thumbnail, XMP, IPTC,
  Photoshop resources, ICC profiles, JPEG comments and APPn blocks, PNG text,
  ``eXIf`` and ``tIME`` chunks, WebP and HEIF metadata chunks and items,
  bytes after the end of the image, extra frames) and the identifying
  findings in them, by :class:`FindingCategory`. Malformed blocks are
  reported and skipped, never fatal: piexif raises on some real files.
* :func:`strip_file` writes the release copy. Stripping is always a fresh
  encode of decoded pixels (:func:`encode_clean`) into a new file, never an
  in-place edit of the original's segments: edited-in-place files have leaked
  cropped-out content from leftover bytes (aCropalypse), phones append
  previews and motion-photo videos after the image, and ``exiftool -all=``
  leaves IFD0 make, model and artist in TIFFs. Every encode is checked by the
  independent byte-level verifier :func:`deid.verify_bytes.verify_clean`.
* :func:`aggregate_metadata` says, explicitly and coarsely, what the ledger may
  keep: the capture year (never the date), and which kinds of metadata were
  removed. No device identity, place, name or software survives.

The report holds identifying values (that is its purpose for a curator); it
belongs in the private workspace and never in a release.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import io
import logging
import re
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import piexif
import pillow_heif
from PIL import Image

from deid.config import InputSettings, OutputSettings
from deid.errors import DeidError, InputError, UnreadableImage, UnsupportedFormat
from deid.io import load_image, write_atomic
from deid.png import encode_png_fast
from deid.types import RGBImage
from deid.verify_bytes import (
    Layout,
    heif_items,
    png_image_data_problems,
    sniff_format,
    verify_clean,
    walk_isobmff,
    walk_jpeg,
    walk_png,
    walk_riff,
)

logger = logging.getLogger(__name__)

SUFFIXES = {"png": ".png", "jpeg": ".jpg"}
# zlib level for release PNGs. Measured on a 12 MP phone photo here: level 6 takes 3.6 s and
# 6.7 MB, level 3 takes 1.7 s and 7.5 MB, level 1 takes 1.2 s and 8.1 MB. Level 3 halves the
# encode, the largest single cost of stripping, for 12% more bytes. (Lossless either way.)
# Vendor blocks (MakerNote, APPn such as FLIR or GoPro) are not parsed: their layouts are private and many.
# They are reported as opaque device blocks and, like everything else, never reach a release.
_OPAQUE_BLOCK = "unparsed vendor block (may hold serials, owner, location, previews)"
MAX_VALUE_CHARS = 80  # a finding shows this much of a value: enough to recognise, short in logs
MAX_INFLATE_BYTES = 4 << 20  # compressed PNG text is inflated at most this far (zip-bomb guard)
EARLIEST_CAPTURE_YEAR = 1990  # digital camera EXIF dates before this are clock resets, not capture years


class FindingCategory(enum.StrEnum):
    """What an identifying finding reveals."""

    LOCATION = "location"
    DEVICE = "device"
    PERSON = "person"
    TIME = "time"
    SOFTWARE = "software"
    EMBEDDED_IMAGE = "embedded_image"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Container:
    """One metadata container found in a file.

    ``kind`` is a stable dotted name (``exif.gps``, ``xmp``, ``png.tEXt``,
    ``jpeg.COM``, ``trailing``, ``frames``); ``offset`` and ``size`` locate
    it in the file (``-1``/``0`` when the container sits inside another);
    ``detail`` says what it holds in words.
    """

    kind: str
    offset: int
    size: int
    detail: str = ""

    def to_json(self) -> dict[str, object]:
        """JSON form for the CLI."""
        return {"kind": self.kind, "offset": self.offset, "size": self.size, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Finding:
    """One identifying item: its category, the tag that holds it, where, and (shortened) what."""

    category: FindingCategory
    tag: str
    container: str
    value: str = ""

    def to_json(self) -> dict[str, object]:
        """JSON form for the CLI."""
        return {"category": str(self.category), "tag": self.tag, "container": self.container, "value": self.value}


@dataclass(frozen=True, slots=True)
class MetadataReport:
    """Everything :func:`inspect_metadata` found in one file.

    ``errors`` lists the blocks that could not be parsed (the walk went on).
    """

    path: str
    format: str
    size_bytes: int
    frames: int
    containers: tuple[Container, ...]
    findings: tuple[Finding, ...]
    errors: tuple[str, ...] = ()

    @property
    def categories(self) -> frozenset[FindingCategory]:
        """The categories of identifying information present."""
        return frozenset(finding.category for finding in self.findings)

    @property
    def has_metadata(self) -> bool:
        """True when any container, finding or unparseable block was found."""
        return bool(self.containers or self.findings or self.errors)

    def to_json(self) -> dict[str, object]:
        """JSON form for the CLI (``deid inspect --json``)."""
        return {
            "file": self.path,
            "format": self.format,
            "size_bytes": self.size_bytes,
            "frames": self.frames,
            "containers": [container.to_json() for container in self.containers],
            "findings": [finding.to_json() for finding in self.findings],
            "categories": sorted(str(category) for category in self.categories),
            "errors": list(self.errors),
        }


@dataclass(frozen=True, slots=True)
class StrippedImage:
    """A release copy written by :func:`strip_image`, and what loading the original involved."""

    source: str
    output: Path
    input_format: str
    frames: int
    sha256: str
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """JSON form for the CLI (``deid strip --json``)."""
        return {
            "file": self.source,
            "output": str(self.output),
            "input_format": self.input_format,
            "frames": self.frames,
            "sha256": self.sha256,
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------- encoding and stripping


def encode_clean(pixels: RGBImage, settings: OutputSettings) -> bytes:
    """Encode upright RGB pixels as a new file with no metadata of any kind.

    Parameters
    ----------
    pixels
        An upright ``H x W x 3`` ``uint8`` sRGB array.
    settings
        The ``[output]`` configuration: PNG (default) or JPEG at a set quality.

    Returns
    -------
    bytes
        PNG or baseline JPEG bytes: no EXIF, XMP, IPTC, ICC, text chunks or
        comments, and nothing after the end of the image.

    Raises
    ------
    ValueError
        If ``pixels`` is not an ``H x W x 3`` ``uint8`` array (a programming error).
    """
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != "uint8":
        raise ValueError(f"encode_clean needs H x W x 3 uint8 pixels, got {pixels.shape} {pixels.dtype}")
    image = Image.fromarray(pixels, "RGB")
    buffer = io.BytesIO()
    if settings.format == "png" and settings.png_encoder == "fpng":
        return encode_png_fast(pixels)
    if settings.format == "png":
        image.save(buffer, format="PNG", optimize=False, compress_level=settings.png_compress_level)
    else:
        image.save(buffer, format="JPEG", quality=settings.jpeg_quality, optimize=False, progressive=False)
    return buffer.getvalue()


def stripped_path(path: str | Path, out_dir: str | Path, output_settings: OutputSettings) -> Path:
    """Where :func:`strip_image` writes the copy of ``path``: same stem, the output format's suffix."""
    return Path(out_dir) / f"{Path(path).stem}{SUFFIXES[output_settings.format]}"


def strip_image(
    path: str | Path, out_dir: str | Path, input_settings: InputSettings, output_settings: OutputSettings
) -> StrippedImage:
    """Write a metadata-free, upright copy of ``path`` into ``out_dir`` and say what it took.

    Parameters
    ----------
    path
        The original image.
    out_dir
        Folder for the copy (created if missing); the copy keeps the stem and
        takes the suffix of the output format (``.png`` or ``.jpg``).
    input_settings
        ``[input]``: allow-list, size limits, and ``multi_frame`` (keep the
        first frame, recorded in ``notes``, or hold the image).
    output_settings
        ``[output]``: format and JPEG quality.

    Returns
    -------
    StrippedImage
        The output path, its SHA-256, and the loader's notes (frames dropped,
        orientation applied, colours converted).

    Raises
    ------
    UnsupportedFormat
        If the original is not an allowed format.
    UnreadableImage
        If it cannot be decoded, is too large, or has several frames while
        ``input.multi_frame`` is ``"hold"``.
    InputError
        If the copy would overwrite the original.
    DeidError
        If the fresh encode fails the independent verification (a bug, never
        published) or the copy cannot be written.
    """
    source = Path(path)
    folder = Path(out_dir)
    target = stripped_path(source, folder, output_settings)
    if target.resolve() == source.resolve():
        raise InputError("the stripped copy would overwrite the original", path=source, hint="choose another --out")
    loaded = load_image(source, input_settings)
    data = encode_clean(loaded.pixels, output_settings)
    verdict = verify_clean(data, path=target, decode=False)
    if not verdict.ok:
        raise DeidError(f"fresh encode failed verification: {'; '.join(verdict.problems)}", path=source)
    write_atomic(target, data)
    logger.info("stripped %s -> %s (%s)", source, target, "; ".join(loaded.notes) or "no notes")
    digest = hashlib.sha256(data).hexdigest()
    return StrippedImage(str(source), target, loaded.format, loaded.frames, digest, loaded.notes)


def strip_file(
    path: str | Path, out_dir: str | Path, input_settings: InputSettings, output_settings: OutputSettings
) -> Path:
    """Write a metadata-free, upright copy of ``path`` into ``out_dir``; return its path.

    The same as :func:`strip_image`, returning only the output path.

    Raises
    ------
    UnsupportedFormat, UnreadableImage, InputError, DeidError
        As :func:`strip_image`.

    Examples
    --------
    >>> from deid.config import load_config
    >>> config = load_config()
    >>> strip_file("IMG_0001.HEIC", "staged", config.input, config.output)  # doctest: +SKIP
    PosixPath('staged/IMG_0001.png')
    """
    return strip_image(path, out_dir, input_settings, output_settings).output


# --------------------------------------------------------------------------- aggregation


# Most specific first; DateTime (last change) and the GPS date are fallbacks that are right to the year
# in camera files, and only the year is kept.
_CAPTURE_TAGS = (
    "DateTimeOriginal",
    "DateTimeDigitized",
    "exif:DateTimeOriginal",
    "xmp:CreateDate",
    "photoshop:DateCreated",
    "DateCreated",
    "DateTime",
    "GPSDateStamp",
)
_YEAR = re.compile(r"^\s*(\d{4})[:\-]\d{2}[:\-]\d{2}|^\s*(\d{4})(\d{2})(\d{2})")


def aggregate_metadata(report: MetadataReport) -> dict[str, object]:
    """What the ledger may keep about an original's metadata: coarse and explicit.

    Only two things survive: ``capture_year`` (from the capture date, never
    the date itself; ``None`` when absent or implausible) and ``removed``, the
    sorted categories of identifying information that were found and not
    published. No device identity, place, name, software or time of day.

    Parameters
    ----------
    report
        What :func:`inspect_metadata` found.

    Returns
    -------
    dict
        ``{"capture_year": int | None, "removed": [category, ...]}``, ready
        for the ledger's ``kept_metadata`` column.

    A missing, unparseable or implausible date gives ``capture_year = None``;
    nothing is raised.

    Examples
    --------
    >>> report = MetadataReport("a.jpg", "JPEG", 10, 1, (), (
    ...     Finding(FindingCategory.TIME, "DateTimeOriginal", "exif.exif", "2019:07:04 10:12:00"),))
    >>> aggregate_metadata(report)
    {'capture_year': 2019, 'removed': ['time']}
    """
    return {"capture_year": capture_year(report), "removed": sorted(str(c) for c in report.categories)}


def capture_year(report: MetadataReport) -> int | None:
    """The year the picture was taken, from the most specific capture date found.

    ``DateTimeOriginal`` wins over ``DateTimeDigitized`` and XMP/IPTC creation
    dates; the file-change ``DateTime`` and the GPS date are last resorts.
    Years before 1990 or after next year are camera clock resets: ``None``.
    """
    latest = datetime.now(UTC).year + 1
    for tag in _CAPTURE_TAGS:
        for finding in report.findings:
            if finding.category is not FindingCategory.TIME or finding.tag != tag:
                continue
            match = _YEAR.match(finding.value)
            if match:
                year = int(match.group(1) or match.group(2))
                if EARLIEST_CAPTURE_YEAR <= year <= latest:
                    return year
    return None


# --------------------------------------------------------------------------- inspection


def inspect_metadata(path: str | Path, *, data: bytes | None = None) -> MetadataReport:
    """List every metadata container in an image file and the identifying findings in them.

    Parameters
    ----------
    path
        The file (also named in the report and in errors).
    data
        Its bytes, if already read.

    Returns
    -------
    MetadataReport
        Containers in file order, findings by category, the frame count, and
        the blocks that could not be parsed.

    Raises
    ------
    UnreadableImage
        If the file cannot be read or is empty.
    UnsupportedFormat
        If the bytes are not JPEG, PNG, WebP, HEIF, TIFF or GIF.

    Examples
    --------
    >>> report = inspect_metadata("IMG_0001.jpg")  # doctest: +SKIP
    >>> sorted(report.categories)  # doctest: +SKIP
    ['device', 'location', 'software', 'time']
    """
    file = Path(path)
    if data is None:
        try:
            data = file.read_bytes()
        except OSError as error:
            raise UnreadableImage(f"cannot read file: {error.strerror}", path=file) from error
    if not data:
        raise UnreadableImage("file is empty (0 bytes)", path=file)
    fmt = sniff_format(data)
    inspector = _INSPECTORS.get(fmt)
    if inspector is None:
        raise UnsupportedFormat("not a JPEG, PNG, WebP, HEIF, TIFF or GIF file", path=file)
    found = _Found()
    inspector(data, found)
    frames = _count_frames(data, found)
    if frames > 1:
        found.container("frames", -1, 0, f"{frames} frames; only the first can be released")
        found.finding(FindingCategory.EMBEDDED_IMAGE, "ExtraFrames", "frames", f"{frames - 1} more frame(s)")
    containers, findings, errors = tuple(found.containers), tuple(found.findings), tuple(found.errors)
    return MetadataReport(str(file), fmt, len(data), frames, containers, findings, errors)


class _Found:
    """Accumulates containers, findings and parse errors during one inspection."""

    def __init__(self) -> None:
        self.containers: list[Container] = []
        self.findings: list[Finding] = []
        self.errors: list[str] = []

    def container(self, kind: str, offset: int, size: int, detail: str = "") -> None:
        self.containers.append(Container(kind, offset, size, detail))

    def finding(self, category: FindingCategory, tag: str, container: str, value: object = "") -> None:
        self.findings.append(Finding(category, tag, container, _short(value)))

    def layout(self, layout: Layout) -> None:
        self.errors.extend(f"structure: {problem}" for problem in layout.problems)

    def trailing(self, data: bytes, end: int) -> None:
        extra = data[end:]
        if not extra or end <= 0:
            return
        what = _sniff_trailing(extra)
        self.container("trailing", end, len(extra), what)
        category = FindingCategory.EMBEDDED_IMAGE if "image" in what or "video" in what else FindingCategory.OTHER
        self.finding(category, "TrailingData", "trailing", f"{len(extra)} bytes: {what}")


def _short(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        raw = bytes(value).rstrip(b"\x00")
        if not raw or not all(32 <= byte < 127 for byte in raw[:MAX_VALUE_CHARS]):
            return f"{len(value)} bytes"
        value = raw.decode("ascii", "replace")
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(item, int) for item in value):
        value = f"{value[0]}/{value[1]}"  # one EXIF rational
    elif isinstance(value, tuple) and all(isinstance(item, tuple) and len(item) == 2 for item in value):
        value = ", ".join(f"{a}/{b}" for a, b in value)  # EXIF rationals
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _sniff_trailing(extra: bytes) -> str:
    head = extra[:64]
    if head.startswith(b"\xff\xd8"):
        return "an appended JPEG image (preview or second picture)"
    if head[4:8] == b"ftyp":
        return "an appended video or HEIF image (motion photo)"
    if head.startswith(b"PK\x03\x04"):
        return "an appended ZIP archive"
    if head.startswith(b"\x89PNG"):
        return "an appended PNG image"
    if not head.strip(b"\x00"):
        return "zero padding"
    return "unidentified bytes"


@contextlib.contextmanager
def _pillow_warnings(found: _Found, where: str) -> Iterator[None]:
    """Turn Pillow's warnings about damaged blocks into report errors instead of letting them escape."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            found.errors.extend(
                f"{where}: Pillow: {warning.message}"
                for warning in caught
                if not issubclass(warning.category, Image.DecompressionBombWarning)  # nothing is decoded here
            )


def _count_frames(data: bytes, found: _Found) -> int:
    try:
        with _pillow_warnings(found, "frames"), Image.open(io.BytesIO(data)) as image:
            return int(getattr(image, "n_frames", 1) or 1)
    except Exception as error:  # Pillow and libheif raise anything on hostile bytes: report it, never crash
        found.errors.append(f"frames: cannot open with Pillow ({error})")
        return 1


# --------------------------------------------------------------------------- per format


def _inspect_jpeg(data: bytes, found: _Found) -> None:
    layout = walk_jpeg(data)
    found.layout(layout)
    icc_parts: list[bytes] = []
    for part in layout.parts:
        payload = data[part.offset + 4 : part.offset + part.size]
        name, label = part.name, part.label
        if name == "COM":
            found.container("jpeg.COM", part.offset, part.size, "comment")
            found.finding(FindingCategory.PERSON, "Comment", "jpeg.COM", payload)
        elif name == "APP0" and label == "JFIF":
            if len(payload) >= 14 and (payload[12] or payload[13]):
                size = f"{payload[12]}x{payload[13]}"
                found.container("jfif.thumbnail", part.offset, part.size, f"{size} thumbnail")
                found.finding(FindingCategory.EMBEDDED_IMAGE, "JFIFThumbnail", "jfif.thumbnail", size)
        elif name == "APP0" and label == "JFXX":
            found.container("jfif.thumbnail", part.offset, part.size, "JFXX extension thumbnail")
            found.finding(FindingCategory.EMBEDDED_IMAGE, "JFXXThumbnail", "jfif.thumbnail", f"{len(payload)} bytes")
        elif name == "APP1" and payload.startswith(b"Exif\x00"):
            found.container("exif", part.offset, part.size, "EXIF (APP1)")
            _inspect_exif(payload[6:], found)
        elif name == "APP1" and payload.startswith(b"http://ns.adobe.com/xap/1.0/\x00"):
            found.container("xmp", part.offset, part.size, "XMP (APP1)")
            _inspect_xmp(payload[29:], "xmp", found)
        elif name == "APP1" and payload.startswith(b"http://ns.adobe.com/xmp/extension/\x00"):
            found.container("xmp.extended", part.offset, part.size, "extended XMP (APP1)")
            _inspect_xmp(payload[35 + 40 :], "xmp.extended", found)
        elif name == "APP2" and payload.startswith(b"ICC_PROFILE\x00"):
            found.container("icc", part.offset, part.size, "ICC profile chunk (APP2)")
            icc_parts.append(payload[14:])
        elif name == "APP2" and payload.startswith(b"MPF\x00"):
            found.container("mpf", part.offset, part.size, "multi-picture format index (APP2)")
            found.finding(FindingCategory.EMBEDDED_IMAGE, "MPFImages", "mpf", "index of further pictures in the file")
        elif name == "APP13" and payload.startswith(b"Photoshop 3.0\x00"):
            found.container("photoshop", part.offset, part.size, "Photoshop image resources (APP13)")
            _inspect_photoshop(payload[14:], found)
        elif name.startswith("APP"):
            kind = f"jpeg.{name}"
            found.container(kind, part.offset, part.size, label or "unlabelled application block")
            if name != "APP14" or label != "Adobe":  # APP14 Adobe only says how colours are transformed
                found.finding(FindingCategory.DEVICE, f"{name}:{label or '?'}", kind, _OPAQUE_BLOCK)
    if icc_parts:
        _inspect_icc(b"".join(icc_parts), found)
    found.trailing(data, layout.end if not layout.problems else len(data))


_PNG_STRUCTURE = frozenset({"IHDR", "PLTE", "IDAT", "IEND", "tRNS"})
_PNG_COLOUR = frozenset({"gAMA", "cHRM", "sRGB", "sBIT", "pHYs", "bKGD", "hIST", "sPLT"})  # listed, not identifying
_PNG_TEXT_CATEGORIES = {
    "author": FindingCategory.PERSON,
    "copyright": FindingCategory.PERSON,
    "title": FindingCategory.PERSON,
    "description": FindingCategory.PERSON,
    "comment": FindingCategory.PERSON,
    "disclaimer": FindingCategory.PERSON,
    "warning": FindingCategory.PERSON,
    "creation time": FindingCategory.TIME,
    "date:create": FindingCategory.TIME,
    "date:modify": FindingCategory.TIME,
    "date:timestamp": FindingCategory.TIME,
    "software": FindingCategory.SOFTWARE,
    "source": FindingCategory.DEVICE,  # the PNG spec's "device used to create the image"
}


def _inspect_png(data: bytes, found: _Found) -> None:
    layout = walk_png(data)
    found.layout(layout)
    for part in layout.parts:
        if part.name in _PNG_STRUCTURE:
            continue
        body = data[part.offset + 8 : part.offset + part.size - 4]
        kind = f"png.{part.name}"
        if part.name in ("tEXt", "zTXt", "iTXt"):
            keyword, text = _png_text(part.name, body, found)
            found.container(kind, part.offset, part.size, keyword)
            _inspect_png_text(keyword, text, kind, found)
        elif part.name == "eXIf":
            found.container(kind, part.offset, part.size, "EXIF")
            _inspect_exif(body, found)
        elif part.name == "tIME":
            found.container(kind, part.offset, part.size, "last-modification time")
            if len(body) == 7:
                year, month, day, hour, minute, second = struct.unpack(">HBBBBB", body)
                stamp = f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}"
                found.finding(FindingCategory.TIME, "tIME", kind, stamp)
        elif part.name == "iCCP":
            found.container(kind, part.offset, part.size, f"ICC profile {part.label!r}")
            name_end = body.find(b"\x00")
            profile = _inflate(body[name_end + 2 :], kind, found) if name_end >= 0 else b""
            if profile:
                _inspect_icc(profile, found)
        elif part.name in ("acTL", "fcTL", "fdAT"):
            found.container(kind, part.offset, part.size, "animation (APNG)")
        else:
            found.container(kind, part.offset, part.size, "ancillary chunk")
            if part.name[0].islower() and part.name not in _PNG_COLOUR:
                found.finding(FindingCategory.OTHER, part.name, kind, f"{part.size} bytes in an unknown chunk")
    for problem in png_image_data_problems(data, layout):
        if "follow the end" in problem:  # an in-place edit's leftovers: often the uncropped picture (aCropalypse)
            found.container("png.idat_leftover", -1, 0, problem)
            found.finding(FindingCategory.EMBEDDED_IMAGE, "IDATLeftover", "png.idat_leftover", problem)
    found.trailing(data, layout.end if not layout.problems else len(data))


def _png_text(kind: str, body: bytes, found: _Found) -> tuple[str, str]:
    """Keyword and text of a tEXt, zTXt or iTXt chunk (compressed text inflated with a cap)."""
    keyword, _, rest = body.partition(b"\x00")
    name = keyword.decode("latin-1")
    if kind == "tEXt":
        return name, rest.decode("latin-1")
    if kind == "zTXt":
        return name, _inflate(rest[1:], f"png.zTXt {name}", found).decode("latin-1")
    flag, method = rest[:1], rest[1:2]  # iTXt: compression flag, method, language\0, translated keyword\0, text
    text = rest[2:].split(b"\x00", 2)[-1]
    if flag == b"\x01" and method == b"\x00":
        text = _inflate(text, f"png.iTXt {name}", found)
    return name, text.decode("utf-8", "replace")


def _inflate(compressed: bytes, where: str, found: _Found) -> bytes:
    try:
        inflater = zlib.decompressobj()
        out = inflater.decompress(compressed, MAX_INFLATE_BYTES)
    except zlib.error as error:
        found.errors.append(f"{where}: cannot inflate ({error})")
        return b""
    if inflater.unconsumed_tail:
        found.errors.append(f"{where}: inflates past {MAX_INFLATE_BYTES} bytes; read the first part only")
    return out


def _inspect_png_text(keyword: str, text: str, kind: str, found: _Found) -> None:
    lowered = keyword.lower()
    if lowered == "xml:com.adobe.xmp":
        _inspect_xmp(text.encode("utf-8"), kind, found)
        return
    if lowered.startswith("raw profile type"):
        # ImageMagick stores whole profiles as hex: "\n<name>\n<length>\n<hex...>"
        profile_type = lowered.removeprefix("raw profile type").strip()
        fields = text.strip().split(None, 2)
        try:
            raw = bytes.fromhex("".join(fields[2].split())) if len(fields) == 3 else b""
        except ValueError:
            found.errors.append(f"{kind} {keyword}: profile is not hex")
            return
        if profile_type in ("exif", "app1"):
            _inspect_exif(raw[6:] if raw.startswith(b"Exif") else raw, found)
        elif profile_type == "xmp":
            _inspect_xmp(raw, kind, found)
        elif profile_type in ("iptc", "8bim"):
            _inspect_photoshop(raw, found) if raw.startswith(b"8BIM") else _inspect_iptc(raw, found)
        elif profile_type in ("icc", "icm"):
            _inspect_icc(raw, found)
        else:
            found.finding(FindingCategory.OTHER, keyword, kind, f"{len(raw)} bytes")
        return
    category = _PNG_TEXT_CATEGORIES.get(lowered, FindingCategory.PERSON)  # unknown free text may name someone
    found.finding(category, keyword, kind, text)


def _inspect_webp(data: bytes, found: _Found) -> None:
    layout = walk_riff(data)
    found.layout(layout)
    for part in layout.parts:
        body = data[part.offset + 8 : part.offset + part.size]
        name = part.name.strip()
        if part.name in ("VP8 ", "VP8L", "ALPH", "VP8X"):
            continue
        kind = f"webp.{name}"
        if name == "EXIF":
            found.container(kind, part.offset, part.size, "EXIF")
            _inspect_exif(body[6:] if body.startswith(b"Exif") else body, found)
        elif name == "XMP":
            found.container(kind, part.offset, part.size, "XMP")
            _inspect_xmp(body, kind, found)
        elif name == "ICCP":
            found.container(kind, part.offset, part.size, "ICC profile")
            _inspect_icc(body, found)
        elif name in ("ANIM", "ANMF"):
            found.container(kind, part.offset, part.size, "animation")
        else:
            found.container(kind, part.offset, part.size, "unknown chunk")
            found.finding(FindingCategory.OTHER, name, kind, f"{part.size} bytes in an unknown chunk")
    found.trailing(data, layout.end if not layout.problems else len(data))


def _inspect_heif(data: bytes, found: _Found) -> None:
    layout = walk_isobmff(data)
    found.layout(layout)
    items = heif_items(layout)
    for part in layout.parts:
        if "/" not in part.name and part.name not in ("ftyp", "meta", "mdat"):
            found.container(f"heif.{part.name}", part.offset, part.size, "top-level box")
            if part.name not in ("free", "skip"):
                found.finding(FindingCategory.OTHER, part.name, f"heif.{part.name}", f"{part.size} bytes")
        elif part.name == "meta/iinf/Exif":
            found.container("heif.Exif", part.offset, part.size, f"EXIF item {part.label}")
        elif part.name == "meta/iinf/mime":
            found.container("heif.mime", part.offset, part.size, f"MIME item {part.label} (XMP or other)")
        elif part.name == "meta/iprp/colr" and part.label in ("prof", "rICC"):
            found.container("icc", part.offset, part.size, "ICC profile (colr property)")
        elif part.name == "meta/iprp/auxC":
            found.container("heif.auxiliary", part.offset, part.size, "auxiliary image (depth, alpha or gain map)")
    for ref_type, source, _targets in items.references:
        if ref_type == "thmb":
            found.container("heif.thumbnail", -1, 0, f"item {source} is a thumbnail")
            found.finding(FindingCategory.EMBEDDED_IMAGE, "Thumbnail", "heif.thumbnail", f"item {source}")
        elif ref_type == "auxl":
            found.finding(FindingCategory.EMBEDDED_IMAGE, "AuxiliaryImage", "heif.auxiliary", f"item {source}")
    found.trailing(data, layout.end if not layout.problems else len(data))
    try:
        heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
        info = heif.info
    except Exception as error:  # Pillow and libheif raise anything on hostile bytes: report it, never crash
        found.errors.append(f"heif: libheif cannot read the metadata ({error})")
        return
    exif, xmp, icc = info.get("exif"), info.get("xmp"), info.get("icc_profile")
    if isinstance(exif, bytes) and exif:
        _inspect_exif(exif[6:] if exif.startswith(b"Exif") else exif, found)
    if isinstance(xmp, bytes) and xmp:
        _inspect_xmp(xmp, "heif.mime", found)
    if isinstance(icc, bytes) and icc:
        _inspect_icc(icc, found)


_TIFF_BLOCKS = (
    (700, "xmp", "XMP (tag 700)"),
    (33723, "iptc", "IPTC (tag 33723)"),
    (34377, "photoshop", "Photoshop resources (tag 34377)"),
    (34675, "icc", "ICC profile (tag 34675)"),
)


def _inspect_tiff(data: bytes, found: _Found) -> None:
    found.container("tiff.ifd0", 4, 0, "TIFF image file directory (every TIFF has one)")
    _inspect_exif(data, found)
    try:
        with _pillow_warnings(found, "tiff"), Image.open(io.BytesIO(data)) as image:
            tags = dict(getattr(image, "tag_v2", {}))
    except Exception as error:  # Pillow and libheif raise anything on hostile bytes: report it, never crash
        found.errors.append(f"tiff: cannot read tags ({error})")
        return
    for tag, kind, detail in _TIFF_BLOCKS:
        value = tags.get(tag)
        if value is None:
            continue
        if isinstance(value, bytes):
            raw = value
        else:
            raw = bytes(value) if isinstance(value, tuple | list) else str(value).encode()
        found.container(kind, -1, len(raw), detail)
        if tag == 700:
            _inspect_xmp(raw, kind, found)
        elif tag == 33723:
            _inspect_iptc(raw, found)
        elif tag == 34377:
            _inspect_photoshop(raw, found)
        else:
            _inspect_icc(raw, found)


def _inspect_gif(data: bytes, found: _Found) -> None:
    try:
        with _pillow_warnings(found, "gif"), Image.open(io.BytesIO(data)) as image:
            info = dict(image.info)
    except Exception as error:  # Pillow and libheif raise anything on hostile bytes: report it, never crash
        found.errors.append(f"gif: cannot read ({error})")
        return
    if info.get("comment"):
        found.container("gif.comment", -1, len(info["comment"]), "comment extension")
        found.finding(FindingCategory.PERSON, "Comment", "gif.comment", info["comment"])
    if info.get("xmp"):
        found.container("xmp", -1, len(info["xmp"]), "XMP application extension")
        _inspect_xmp(info["xmp"], "xmp", found)
    if info.get("extension"):
        found.container("gif.application", -1, 0, "application extension")


_INSPECTORS = {
    "JPEG": _inspect_jpeg,
    "PNG": _inspect_png,
    "WEBP": _inspect_webp,
    "HEIF": _inspect_heif,
    "TIFF": _inspect_tiff,
    "GIF": _inspect_gif,
}


# --------------------------------------------------------------------------- EXIF

# (IFD, tag) -> category, for the tags that identify; other tags are only counted.
_EXIF_CATEGORIES: dict[tuple[str, int], FindingCategory] = {
    **{("0th", tag): FindingCategory.DEVICE for tag in (271, 272, 316, 50708, 50709, 50735)},
    **{("0th", tag): FindingCategory.PERSON for tag in (269, 270, 285, 315, 33432, 40091, 40092, 40093, 40094, 40095)},
    **{("0th", tag): FindingCategory.TIME for tag in (306, 50971)},
    **{("0th", tag): FindingCategory.SOFTWARE for tag in (11, 305)},
    **{("Exif", tag): FindingCategory.DEVICE for tag in (37500, 42016, 42033, 42034, 42035, 42036, 42037)},
    **{("Exif", tag): FindingCategory.PERSON for tag in (37510, 42032)},
    **{("Exif", tag): FindingCategory.TIME for tag in (36867, 36868, 36880, 36881, 36882, 37520, 37521, 37522)},
}
_IFD_CONTAINERS = {
    "0th": "exif.ifd0",
    "Exif": "exif.exif",
    "GPS": "exif.gps",
    "Interop": "exif.interop",
    "1st": "exif.ifd1",
}
_PIEXIF_TABLES = {"0th": "Image", "1st": "Image", "Exif": "Exif", "GPS": "GPS", "Interop": "Interop"}


def _tag_name(ifd: str, tag: int) -> str:
    entry = piexif.TAGS.get(_PIEXIF_TABLES[ifd], {}).get(tag)
    return str(entry["name"]) if entry else f"Tag0x{tag:04X}"


_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_SUB_IFD_TAGS = (34665, 34853, 40965)  # Exif, GPS, Interoperability pointers
MAX_IFDS = 32
MAX_IFD_ENTRIES = 4096


def exif_structure_problem(tiff: bytes) -> str | None:
    """Walk a TIFF-structured EXIF block's IFDs; describe the first structural problem, or ``None``.

    Checks every IFD and entry lies inside the block, every value's declared
    size (count x type size) fits in the block, sub-IFD pointers and the IFD
    chain have no loops, and counts stay small. This is what makes the block
    safe to hand to piexif, which allocates from the declared counts.
    """
    if len(tiff) < 8 or tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        return "no TIFF header"
    order = "<" if tiff[:2] == b"II" else ">"
    # (offset, follow its next-IFD pointer): only IFD0 -> IFD1 is a chain; sub-IFDs' pointers mean nothing.
    pending = [(int.from_bytes(tiff[4:8], "little" if order == "<" else "big"), True)]
    seen: set[int] = set()
    while pending:
        offset, chained = pending.pop()
        if offset == 0:
            continue
        if offset in seen:
            return f"IFD at {offset} is reached twice (a loop)"
        if len(seen) >= MAX_IFDS:
            return f"more than {MAX_IFDS} IFDs"
        seen.add(offset)
        if offset + 2 > len(tiff):
            return f"IFD offset {offset} is past the end ({len(tiff)} bytes)"
        count = struct.unpack_from(order + "H", tiff, offset)[0]
        end = offset + 2 + 12 * count
        if count > MAX_IFD_ENTRIES or end + 4 > len(tiff):
            return f"IFD at {offset} declares {count} entries, more than fit"
        for index in range(count):
            tag, kind, items, value = struct.unpack_from(order + "HHII", tiff, offset + 2 + 12 * index)
            size = _TIFF_TYPE_SIZES.get(kind)
            if size is None:
                return f"tag 0x{tag:04X} has unknown type {kind}"
            total = size * items
            if total > len(tiff) or (total > 4 and value + total > len(tiff)):
                return f"tag 0x{tag:04X} declares {total} bytes, more than the block holds"
            if tag in _SUB_IFD_TAGS:
                pending.append((value, False))
        if chained:
            pending.append((struct.unpack_from(order + "I", tiff, end)[0], False))
    return None


def _inspect_exif(tiff: bytes, found: _Found) -> None:
    """Report the IFDs of a TIFF-structured EXIF block and the identifying tags in them."""
    if tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        found.errors.append(f"exif: block does not start with a TIFF header ({len(tiff)} bytes)")
        return
    problem = exif_structure_problem(tiff)
    if problem is not None:
        # piexif sizes its buffers from the counts in the block ("L" * count): a hostile count of
        # 0xFFFFFFFF costs gigabytes. Only a block whose every entry fits inside it goes to piexif.
        found.errors.append(f"exif: malformed block not parsed with piexif ({problem})")
        loaded = _exif_with_pillow(tiff, found)
    else:
        try:
            loaded = piexif.load(tiff)
        except Exception as error:  # piexif raises anything on malformed real-world EXIF; report, go on
            found.errors.append(f"exif: piexif cannot parse the block ({type(error).__name__}: {error})")
            loaded = _exif_with_pillow(tiff, found)
    for ifd, kind in _IFD_CONTAINERS.items():
        entries = loaded.get(ifd) or {}
        if not isinstance(entries, dict) or not entries:
            continue
        found.container(kind, -1, 0, f"{len(entries)} tag(s)")
        for tag, value in entries.items():
            if not isinstance(tag, int):
                continue
            _exif_finding(ifd, tag, value, kind, found)
    thumbnail = loaded.get("thumbnail")
    first = loaded.get("1st") or {}
    if thumbnail or (isinstance(first, dict) and 513 in first):
        size = len(thumbnail) if isinstance(thumbnail, bytes) else 0
        found.container("exif.thumbnail", -1, size, "IFD1 thumbnail image")
        found.finding(FindingCategory.EMBEDDED_IMAGE, "ThumbnailImage", "exif.thumbnail", f"{size} bytes")


def _exif_finding(ifd: str, tag: int, value: object, kind: str, found: _Found) -> None:
    name = _tag_name(ifd, tag)
    if ifd == "GPS":
        category = FindingCategory.TIME if tag in (7, 29) else FindingCategory.LOCATION
        if tag == 0:  # GPSVersionID says nothing by itself
            return
    elif ifd == "Exif" and tag == 37500:
        found.container("exif.makernote", -1, len(value) if isinstance(value, bytes) else 0, "MakerNote")
        found.finding(FindingCategory.DEVICE, name, "exif.makernote", _OPAQUE_BLOCK)
        return
    else:
        mapped = _EXIF_CATEGORIES.get(("0th" if ifd == "1st" else ifd, tag))
        if mapped is None:
            return
        category = mapped
    if _is_blank(value):
        return
    found.finding(category, name, kind, value)


def _is_blank(value: object) -> bool:
    if isinstance(value, bytes):
        return not value.strip(b"\x00 ")
    if isinstance(value, str):
        return not value.strip()
    return False


def _exif_with_pillow(tiff: bytes, found: _Found) -> dict[str, object]:
    """Second opinion when piexif fails: Pillow's more forgiving EXIF reader."""
    exif = Image.Exif()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exif.load(b"Exif\x00\x00" + tiff)
            result: dict[str, object] = {"0th": dict(exif.items())}
            for ifd, pointer in (("Exif", 0x8769), ("GPS", 0x8825)):
                result[ifd] = dict(exif.get_ifd(pointer).items())
        found.errors.extend(f"exif: Pillow: {warning.message}" for warning in caught)
    except Exception as error:  # the fallback parses hostile bytes too; a failure is reported, not raised
        found.errors.append(f"exif: Pillow cannot parse the block either ({type(error).__name__}: {error})")
        return {}
    return result


# --------------------------------------------------------------------------- XMP, IPTC, Photoshop, ICC

_XMP_PROPERTY = re.compile(rb"""\b([A-Za-z][\w.-]*):([A-Za-z][\w.-]*)(?:\s*=\s*["']([^"']*)["']|>([^<]*)<)""")
_XMP_CATEGORIES: dict[str, FindingCategory] = {
    **{name: FindingCategory.LOCATION for name in (
        "photoshop:City", "photoshop:State", "photoshop:Country", "Iptc4xmpCore:Location",
        "Iptc4xmpCore:CountryCode", "Iptc4xmpExt:LocationShown", "Iptc4xmpExt:LocationCreated")},
    **{name: FindingCategory.DEVICE for name in (
        "tiff:Make", "tiff:Model", "aux:SerialNumber", "aux:Lens", "aux:LensID", "aux:LensSerialNumber",
        "exifEX:BodySerialNumber", "exifEX:LensSerialNumber", "exifEX:LensMake", "exifEX:LensModel",
        "exif:ImageUniqueID", "xmpMM:DocumentID", "xmpMM:InstanceID", "xmpMM:OriginalDocumentID",
        "xmpMM:DerivedFrom", "stRef:documentID", "stRef:instanceID")},
    **{name: FindingCategory.PERSON for name in (
        "dc:creator", "dc:rights", "dc:contributor", "dc:publisher", "dc:description", "dc:title", "dc:subject",
        "photoshop:AuthorsPosition", "photoshop:Credit", "photoshop:CaptionWriter", "photoshop:Source",
        "xmpRights:Owner", "xmpRights:WebStatement", "Iptc4xmpCore:CreatorContactInfo", "tiff:Artist",
        "tiff:Copyright", "tiff:ImageDescription", "xmp:Author", "aux:OwnerName", "exifEX:CameraOwnerName",
        "exif:UserComment", "pdf:Author", "photoshop:Headline")},
    **{name: FindingCategory.TIME for name in (
        "xmp:CreateDate", "xmp:ModifyDate", "xmp:MetadataDate", "exif:DateTimeOriginal", "exif:DateTimeDigitized",
        "photoshop:DateCreated", "tiff:DateTime", "stEvt:when")},
    **{name: FindingCategory.SOFTWARE for name in ("xmp:CreatorTool", "tiff:Software", "stEvt:softwareAgent")},
    **{name: FindingCategory.EMBEDDED_IMAGE for name in (
        "xmpGImg:image", "GCamera:MotionPhoto", "GCamera:MicroVideo", "Container:Directory",
        "GDepth:Data", "GImage:Data", "xmpNote:HasExtendedXMP")},
}  # fmt: skip


def _inspect_xmp(packet: bytes, container: str, found: _Found) -> None:
    """Report identifying XMP properties.

    A regular expression, not an XML parser: packets are often malformed, and
    hostile XML (entity expansion) must not be parsed at all.
    """
    seen: set[str] = set()
    for match in _XMP_PROPERTY.finditer(packet):
        name = f"{match.group(1).decode('latin-1')}:{match.group(2).decode('latin-1')}"
        category = _XMP_CATEGORIES.get(name)
        if category is None and name.startswith("exif:GPS"):
            category = FindingCategory.LOCATION
        if category is None or name in seen:
            continue
        value = (match.group(3) if match.group(3) is not None else match.group(4) or b"").decode("utf-8", "replace")
        if not value.strip() and name not in ("dc:creator", "dc:rights", "dc:description", "dc:title", "dc:subject"):
            continue  # empty attribute; container elements (dc:creator > rdf:Seq) are reported anyway
        seen.add(name)
        found.finding(category, name, container, value)


_IPTC_CATEGORIES: dict[int, tuple[str, FindingCategory]] = {
    5: ("ObjectName", FindingCategory.PERSON),
    25: ("Keywords", FindingCategory.PERSON),
    30: ("ReleaseDate", FindingCategory.TIME),
    55: ("DateCreated", FindingCategory.TIME),
    60: ("TimeCreated", FindingCategory.TIME),
    62: ("DigitalCreationDate", FindingCategory.TIME),
    63: ("DigitalCreationTime", FindingCategory.TIME),
    65: ("OriginatingProgram", FindingCategory.SOFTWARE),
    70: ("ProgramVersion", FindingCategory.SOFTWARE),
    80: ("By-line", FindingCategory.PERSON),
    85: ("By-lineTitle", FindingCategory.PERSON),
    90: ("City", FindingCategory.LOCATION),
    92: ("Sub-location", FindingCategory.LOCATION),
    95: ("Province-State", FindingCategory.LOCATION),
    100: ("Country-PrimaryLocationCode", FindingCategory.LOCATION),
    101: ("Country-PrimaryLocationName", FindingCategory.LOCATION),
    110: ("Credit", FindingCategory.PERSON),
    115: ("Source", FindingCategory.PERSON),
    116: ("CopyrightNotice", FindingCategory.PERSON),
    118: ("Contact", FindingCategory.PERSON),
    120: ("Caption-Abstract", FindingCategory.PERSON),
    122: ("Writer-Editor", FindingCategory.PERSON),
}


def _inspect_iptc(block: bytes, found: _Found) -> None:
    """Report identifying IPTC-IIM datasets (record 2)."""
    position = 0
    found.container("iptc", -1, len(block), "IPTC-IIM records")
    while position + 5 <= len(block):
        if block[position] != 0x1C:
            found.errors.append(f"iptc: bad tag marker at byte {position}")
            return
        record, dataset = block[position + 1], block[position + 2]
        size = int.from_bytes(block[position + 3 : position + 5], "big")
        if size & 0x8000:
            found.errors.append("iptc: extended dataset length not supported; rest skipped")
            return
        value = block[position + 5 : position + 5 + size]
        position += 5 + size
        if record == 2 and dataset in _IPTC_CATEGORIES and value.strip():
            name, category = _IPTC_CATEGORIES[dataset]
            found.finding(category, name, "iptc", value.decode("utf-8", "replace"))


def _inspect_photoshop(block: bytes, found: _Found) -> None:
    """Walk Photoshop image resources (8BIM): IPTC, thumbnails, embedded EXIF/XMP/ICC."""
    position = 0
    while position + 12 <= len(block):
        if block[position : position + 4] != b"8BIM":
            found.errors.append(f"photoshop: bad resource signature at byte {position}")
            return
        resource = int.from_bytes(block[position + 4 : position + 6], "big")
        name_length = block[position + 6]
        name_span = name_length + 1 + ((name_length + 1) & 1)
        size_at = position + 6 + name_span
        size = int.from_bytes(block[size_at : size_at + 4], "big")
        body = block[size_at + 4 : size_at + 4 + size]
        position = size_at + 4 + size + (size & 1)
        if resource == 0x0404:
            _inspect_iptc(body, found)
        elif resource in (0x0409, 0x040C):
            found.container("photoshop.thumbnail", -1, len(body), "Photoshop thumbnail resource")
            found.finding(
                FindingCategory.EMBEDDED_IMAGE, "PhotoshopThumbnail", "photoshop.thumbnail", f"{len(body)} bytes"
            )
        elif resource == 0x0422:
            _inspect_exif(body, found)
        elif resource == 0x0424:
            _inspect_xmp(body, "xmp", found)
        elif resource == 0x040F:
            _inspect_icc(body, found)


def _inspect_icc(profile: bytes, found: _Found) -> None:
    """Report an ICC profile's description, and a device maker/model when it names one."""
    if len(profile) < 132:
        found.errors.append(f"icc: profile too short ({len(profile)} bytes)")
        return
    manufacturer = profile[48:52].strip(b"\x00 ")
    model = profile[52:56].strip(b"\x00 ")
    tags = _icc_tags(profile)
    description = _icc_text(profile, tags.get(b"desc"))
    found.container("icc.profile", -1, len(profile), description or "ICC profile")
    for signature, label in ((b"dmnd", "ICCDeviceManufacturer"), (b"dmdd", "ICCDeviceModel")):
        text = _icc_text(profile, tags.get(signature))
        if text:
            found.finding(FindingCategory.DEVICE, label, "icc.profile", text)
    if model and model != b"\x00\x00\x00\x00":
        found.finding(FindingCategory.DEVICE, "ICCDeviceModel", "icc.profile", f"{manufacturer!r}/{model!r}")


def _icc_tags(profile: bytes) -> dict[bytes, tuple[int, int]]:
    count = int.from_bytes(profile[128:132], "big")
    tags: dict[bytes, tuple[int, int]] = {}
    for index in range(min(count, 200)):
        entry = profile[132 + 12 * index : 144 + 12 * index]
        if len(entry) < 12:
            break
        tags[entry[:4]] = (int.from_bytes(entry[4:8], "big"), int.from_bytes(entry[8:12], "big"))
    return tags


def _icc_text(profile: bytes, where: tuple[int, int] | None) -> str:
    """Text of a ``desc``/``mluc``/``text`` tag, best effort."""
    if where is None:
        return ""
    offset, size = where
    body = profile[offset : offset + size]
    if body[:4] == b"desc":
        length = int.from_bytes(body[8:12], "big")
        return body[12 : 12 + length].rstrip(b"\x00").decode("latin-1", "replace")
    if body[:4] == b"mluc" and len(body) >= 28:
        record_size, first = int.from_bytes(body[8:12], "big"), body[16:28]
        if record_size >= 12:
            length, start = int.from_bytes(first[4:8], "big"), int.from_bytes(first[8:12], "big")
            return body[start : start + length].decode("utf-16-be", "replace").rstrip("\x00")
    if body[:4] == b"text":
        return body[8:].rstrip(b"\x00").decode("latin-1", "replace")
    return ""


KNOWN_APPENDICES = ("an appended JPEG image", "an appended video or HEIF image", "zero padding")
"""Trailing data phones write legitimately (MPF previews, motion photos, padding)."""


def trailing_data(report: MetadataReport) -> str | None:
    """Describe the bytes after the end of the image, or ``None`` when there are none."""
    for container in report.containers:
        if container.kind == "trailing":
            return f"{container.size} bytes after the image: {container.detail}"
    return None


def is_known_appendix(description: str) -> bool:
    """True when trailing data is something phones append legitimately, not a polyglot payload."""
    return any(known in description for known in KNOWN_APPENDICES)
