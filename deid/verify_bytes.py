"""Independent byte-level check that a release file carries nothing but pixels.

:func:`verify_clean` is what the pipeline and the release gate call on every
staged file. It does not trust the encoder that wrote the file (Pillow, in
:func:`deid.metadata.encode_clean`): it walks the bytes itself, segment by
segment for JPEG, chunk by chunk for PNG and WebP, box by box for HEIF, and
checks every structural unit against a short allow-list. Anything else fails:
a metadata container, a comment, an embedded thumbnail, a second frame, an
unknown chunk, or a single byte after the end of the image. Pillow is used
only afterwards, to double-check that the file also decodes.

The walkers (:func:`walk_jpeg`, :func:`walk_png`, :func:`walk_riff`,
:func:`walk_isobmff`) are tolerant: they list what they find and the
structural problems they meet, and leave the judging to their callers, so
:mod:`deid.metadata` reuses them to report what an original carries.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pillow_heif
from isal import isal_zlib  # zlib-compatible inflate, about twice as fast (Intel ISA-L)
from isal.igzip_lib import IsalError
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_INFLATE_ERRORS: tuple[type[BaseException], ...] = (zlib.error, cast("type[BaseException]", IsalError))

# Release files are freshly encoded RGB: these are the only units they need.
PNG_ALLOWED = frozenset({b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"})
PNG_FRAME_CHUNKS = frozenset({b"acTL", b"fcTL", b"fdAT"})
PNG_METADATA_CHUNKS = frozenset(
    {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME", b"iCCP", b"caBX", b"vpAg", b"meTa", b"prVW", b"mkBF"}
)
JPEG_FRAME_MARKERS = frozenset({0xC0, 0xC1, 0xC2})  # baseline, extended, progressive Huffman
JPEG_ALLOWED = frozenset({0xC4, 0xDB, 0xDD, 0xDA})  # DHT, DQT, DRI, SOS (plus SOI, EOI, JFIF APP0)
WEBP_IMAGE_CHUNKS = frozenset({"VP8 ", "VP8L"})
WEBP_VP8X_FORBIDDEN_FLAGS = {0x20: "ICC profile", 0x08: "EXIF", 0x04: "XMP", 0x02: "animation"}
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"})
HEIF_IMAGE_ITEMS = frozenset({b"hvc1", b"av01", b"grid", b"iden", b"iovl", b"jpeg", b"unci", b"avc1"})
HEIF_DERIVED_ITEMS = frozenset({b"grid", b"iden", b"iovl"})
HEIF_ALLOWED_PROPERTIES = frozenset({b"hvcC", b"av1C", b"ispe", b"pixi", b"colr", b"irot", b"imir", b"clap", b"pasp"})
HEIF_ALLOWED_META = frozenset({b"hdlr", b"pitm", b"iloc", b"iinf", b"iref", b"iprp", b"idat", b"dinf"})

pillow_heif.register_heif_opener()  # only for the decode double-check


@dataclass(frozen=True, slots=True)
class Part:
    """One structural unit of a file: a JPEG segment, PNG or RIFF chunk, or ISO-BMFF box.

    ``name`` is the unit's own name (``APP1``, ``tEXt``, ``EXIF``,
    ``meta/iinf/Exif``), ``label`` what identifies its content (an APPn
    identifier such as ``Exif`` or ``ICC_PROFILE``, a PNG text keyword, an
    item type), ``offset`` where it starts and ``size`` how many bytes it
    spans including its header.
    """

    name: str
    offset: int
    size: int
    label: str = ""


@dataclass(frozen=True, slots=True)
class Layout:
    """What a walker found: the units in file order, where the image ends, and structural problems."""

    format: str
    parts: tuple[Part, ...]
    end: int
    problems: tuple[str, ...] = ()

    def trailing_bytes(self, total: int) -> int:
        """How many bytes follow the end of the image in a file of ``total`` bytes."""
        return max(0, total - self.end)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The verdict on one file: ``ok`` only when ``problems`` is empty."""

    ok: bool
    format: str
    problems: tuple[str, ...] = ()
    path: str | None = None

    def to_json(self) -> dict[str, object]:
        """JSON form for the CLI and the release gate."""
        return {"file": self.path, "ok": self.ok, "format": self.format, "problems": list(self.problems)}


@dataclass(slots=True)
class _Walk:
    """Mutable accumulator used while walking; frozen into a :class:`Layout` at the end."""

    format: str
    parts: list[Part] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    end: int = 0

    def freeze(self) -> Layout:
        return Layout(self.format, tuple(self.parts), self.end, tuple(self.problems))


_AVIF_BRANDS = frozenset({b"avif", b"avis", b"avio"})
# Still-image brands of HEIF (HEVC and the generic MIAF/HEIF structural brands); MP4 and QuickTime
# (isom, mp42, qt  ...) share the box structure but are videos, not images.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"})
_TIFF_HEADERS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic TIFF and BigTIFF


def sniff_format(data: bytes) -> str:
    """Name the container format from the first bytes: JPEG, PNG, WEBP, HEIF, AVIF, TIFF, GIF or UNKNOWN.

    TIFF covers BigTIFF (``II+``/``MM+``). An ISO base media file is HEIF or
    AVIF by its brands (AVIF when an AV1 brand is named and no HEVC one);
    one with no still-image brand (an MP4 or QuickTime video) is UNKNOWN.
    """
    if data.startswith(b"\xff\xd8"):
        return "JPEG"
    if data.startswith(PNG_SIGNATURE):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        return _isobmff_brand(data)
    if data[:4] in _TIFF_HEADERS:
        return "TIFF"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return "UNKNOWN"


def _isobmff_brand(data: bytes) -> str:
    """HEIF, AVIF or UNKNOWN from the ``ftyp`` box's major and compatible brands."""
    size = int.from_bytes(data[:4], "big")
    end = min(len(data), size if 16 <= size <= 4096 else 16)
    brands = {data[8:12]} | {data[at : at + 4] for at in range(16, end - 3, 4)}
    hevc = brands & (_HEIF_BRANDS - {b"mif1", b"msf1"})
    if brands & _AVIF_BRANDS and not hevc:
        return "AVIF"
    if brands & _HEIF_BRANDS:
        return "HEIF"
    return "UNKNOWN"


# --------------------------------------------------------------------------- JPEG


def jpeg_marker_name(marker: int) -> str:
    """Conventional name of a JPEG marker byte (``0xE1`` is ``APP1``)."""
    if 0xE0 <= marker <= 0xEF:
        return f"APP{marker - 0xE0}"
    if 0xD0 <= marker <= 0xD7:
        return f"RST{marker - 0xD0}"
    named = {0xC4: "DHT", 0xC8: "JPG", 0xCC: "DAC", 0xD8: "SOI", 0xD9: "EOI", 0xDA: "SOS", 0xDB: "DQT",
             0xDC: "DNL", 0xDD: "DRI", 0xDE: "DHP", 0xDF: "EXP", 0xFE: "COM"}  # fmt: skip
    if marker in named:
        return named[marker]
    if 0xC0 <= marker <= 0xCF:
        return f"SOF{marker - 0xC0}"
    return f"0x{marker:02X}"


def _app_label(payload: bytes) -> str:
    """The identifier an APPn payload starts with (``Exif``, ``JFIF``, ``ICC_PROFILE``...)."""
    head = payload[:40]
    cut = head.find(b"\x00")
    text = head[: cut if cut >= 0 else 16]
    return text.decode("latin-1").strip()


def walk_jpeg(data: bytes) -> Layout:
    """List the segments of a JPEG stream, entropy-coded data included, up to its EOI.

    Returns
    -------
    Layout
        Every marker segment as a :class:`Part` (``ECS`` for entropy-coded
        data), ``end`` just after the first EOI (or where the walk stopped),
        and the structural problems met (bad marker, truncation).
    """
    walk = _Walk("JPEG")
    if not data.startswith(b"\xff\xd8"):
        walk.problems.append("not a JPEG stream (no SOI)")
        return walk.freeze()
    walk.parts.append(Part("SOI", 0, 2))
    position, total = 2, len(data)
    while True:
        if position + 2 > total:
            walk.problems.append("truncated: no EOI")
            walk.end = total
            break
        if data[position] != 0xFF:
            walk.problems.append(f"expected a marker at byte {position}, found 0x{data[position]:02X}")
            walk.end = position
            break
        while position + 2 < total and data[position + 1] == 0xFF:  # fill bytes before a marker
            position += 1
        marker = data[position + 1]
        name = jpeg_marker_name(marker)
        if marker == 0xD9:
            walk.parts.append(Part("EOI", position, 2))
            walk.end = position + 2
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # standalone markers
            walk.parts.append(Part(name, position, 2))
            position += 2
            continue
        if position + 4 > total:
            walk.problems.append(f"truncated {name} segment at byte {position}")
            walk.end = total
            break
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if length < 2 or position + 2 + length > total:
            walk.problems.append(f"{name} segment at byte {position} has a bad length {length}")
            walk.end = total
            break
        label = _app_label(data[position + 4 : position + 2 + length]) if 0xE0 <= marker <= 0xEF else ""
        walk.parts.append(Part(name, position, 2 + length, label))
        position += 2 + length
        if marker == 0xDA:
            scan_end = _scan_end(data, position)
            if scan_end < 0:
                walk.problems.append("truncated entropy-coded data: no EOI")
                walk.parts.append(Part("ECS", position, total - position))
                walk.end = total
                break
            walk.parts.append(Part("ECS", position, scan_end - position))
            position = scan_end
    return walk.freeze()


def _scan_end(data: bytes, start: int) -> int:
    """Offset of the first marker after entropy-coded data (skipping stuffed 0xFF00 and RSTn), or -1."""
    position, total = start, len(data)
    while True:
        found = data.find(b"\xff", position)
        if found < 0 or found + 1 >= total:
            return -1
        following = data[found + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            position = found + (1 if following == 0xFF else 2)
            continue
        return found


def _check_jpeg(data: bytes, problems: list[str]) -> None:
    layout = walk_jpeg(data)
    problems.extend(layout.problems)
    frames = 0
    scans = 0
    for part in layout.parts:
        name = part.name
        marker = data[part.offset + 1] if part.size >= 2 else 0
        if name in ("SOI", "EOI", "ECS") or name.startswith("RST"):
            if name == "SOI" and part.offset != 0:
                problems.append(f"second SOI at byte {part.offset} (embedded image)")
            continue
        if name == "APP0" and part.label == "JFIF":
            # A JFIF header may carry an uncompressed thumbnail: its size bytes must be zero.
            payload = data[part.offset + 4 : part.offset + part.size]
            if len(payload) < 14 or payload[12] or payload[13] or len(payload) != 14:
                problems.append("JFIF APP0 carries a thumbnail or extra bytes")
            continue
        if 0xE0 <= marker <= 0xEF:
            problems.append(f"metadata segment {name} ({part.label or 'no identifier'}) at byte {part.offset}")
        elif marker == 0xFE:
            problems.append(f"comment segment COM at byte {part.offset}")
        elif marker in JPEG_FRAME_MARKERS:
            frames += 1
            if frames > 1:
                problems.append(f"second frame header {name} at byte {part.offset}")
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            problems.append(f"unsupported frame type {name} (only baseline or progressive Huffman JPEG is released)")
        elif marker in JPEG_ALLOWED:
            scans += marker == 0xDA
        else:
            problems.append(f"segment {name} at byte {part.offset} is not allowed in a release file")
    if not frames:
        problems.append("no frame header (SOF)")
    if not scans:
        problems.append("no scan (SOS)")
    trailing = layout.trailing_bytes(len(data))
    if trailing and not layout.problems:
        problems.append(f"{trailing} byte(s) after EOI")


# --------------------------------------------------------------------------- PNG


def walk_png(data: bytes) -> Layout:
    """List the chunks of a PNG stream up to IEND, checking lengths and CRCs.

    Returns
    -------
    Layout
        Every chunk as a :class:`Part` (``label`` is the keyword of a text
        chunk), ``end`` just after IEND, and structural problems.
    """
    walk = _Walk("PNG")
    if not data.startswith(PNG_SIGNATURE):
        walk.problems.append("not a PNG stream (bad signature)")
        return walk.freeze()
    position, total = len(PNG_SIGNATURE), len(data)
    while True:
        if position + 12 > total:
            walk.problems.append("truncated: no IEND")
            walk.end = total
            break
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        if length > 0x7FFFFFFF or position + 12 + length > total:
            walk.problems.append(f"chunk {kind!r} at byte {position} runs past the end of the file")
            walk.end = total
            break
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        if zlib.crc32(body, zlib.crc32(kind)) != crc:
            walk.problems.append(f"chunk {kind.decode('latin-1')} at byte {position} has a bad CRC")
        label = ""
        if kind in (b"tEXt", b"zTXt", b"iTXt", b"iCCP"):
            label = body[: body.find(b"\x00")].decode("latin-1") if b"\x00" in body[:80] else ""
        walk.parts.append(Part(kind.decode("latin-1"), position, 12 + length, label))
        position += 12 + length
        if kind == b"IEND":
            walk.end = position
            break
    return walk.freeze()


def _png_expected_size(header: bytes) -> int | None:
    """Bytes the IDAT stream must inflate to, from IHDR; None when IHDR is invalid."""
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour)
    if channels is None or depth not in (1, 2, 4, 8, 16) or width == 0 or height == 0 or interlace > 1:
        return None
    bits = channels * depth

    def plane(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + (w * bits + 7) // 8)

    if not interlace:
        return plane(width, height)
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    return sum(plane((width - x + dx - 1) // dx, (height - y + dy - 1) // dy) for x, y, dx, dy in passes)


def _check_png(data: bytes, problems: list[str]) -> None:
    layout = walk_png(data)
    problems.extend(layout.problems)
    parts = layout.parts
    if not parts or parts[0].name != "IHDR" or parts[0].size != 25:
        problems.append("first chunk is not a 13-byte IHDR")
    idat = [i for i, part in enumerate(parts) if part.name == "IDAT"]
    if not idat:
        problems.append("no IDAT chunk")
    elif idat != list(range(idat[0], idat[-1] + 1)):
        problems.append("IDAT chunks are not consecutive")
    for part in parts:
        kind = part.name.encode("latin-1")
        if kind in PNG_ALLOWED:
            if kind == b"IHDR" and part.offset != 8:
                problems.append(f"second IHDR at byte {part.offset}")
            continue
        if kind in PNG_FRAME_CHUNKS:
            problems.append(f"animation chunk {part.name} at byte {part.offset} (extra frames)")
        elif kind in PNG_METADATA_CHUNKS:
            label = f" ({part.label})" if part.label else ""
            problems.append(f"metadata chunk {part.name}{label} at byte {part.offset}")
        else:
            problems.append(f"chunk {part.name} at byte {part.offset} is not allowed in a release file")
    trailing = layout.trailing_bytes(len(data))
    if trailing and not layout.problems:
        problems.append(f"{trailing} byte(s) after IEND")
    problems.extend(png_image_data_problems(data, layout))


def png_image_data_problems(data: bytes, layout: Layout) -> list[str]:
    """Check that the IDAT zlib stream inflates to exactly the size IHDR promises, with nothing after it.

    Returns
    -------
    list of str
        Empty when the image data is exactly one complete zlib stream of the
        right size (or when there is no IHDR/IDAT to check: the chunk checks
        report that).
    """
    parts = layout.parts
    idat = [part for part in parts if part.name == "IDAT"]
    problems: list[str] = []
    if idat and parts and parts[0].name == "IHDR" and parts[0].size == 25:
        _check_png_stream(data, parts[0], idat, problems)
    return problems


def _check_png_stream(data: bytes, header: Part, idat: list[Part], problems: list[str]) -> None:
    """The zlib stream in IDAT must inflate to exactly the image size, with nothing after it.

    Bytes after the end of the zlib stream are exactly what an in-place edit
    leaves behind (the aCropalypse leak), so they fail.
    """
    expected = _png_expected_size(data[header.offset + 8 : header.offset + 21])
    if expected is None:
        problems.append("IHDR holds invalid dimensions, bit depth, colour type or interlace method")
        return
    inflater = isal_zlib.decompressobj()
    produced = 0
    try:
        for part in idat:
            pending = memoryview(data)[part.offset + 8 : part.offset + part.size - 4]
            # At most one byte more than IHDR allows is ever inflated (a bomb stops there), and in one
            # call per chunk: a small output limit would copy the unconsumed input again at every step.
            produced += len(inflater.decompress(pending, expected - produced + 1))
            if produced > expected:
                problems.append(f"image data inflates to more than the {expected} bytes IHDR needs")
                return
            if inflater.eof and (inflater.unused_data or part is not idat[-1]):
                problems.append("bytes follow the end of the compressed image data")
                return
        produced += len(inflater.flush())
    except _INFLATE_ERRORS as error:
        problems.append(f"compressed image data is corrupt ({error})")
        return
    if not inflater.eof:
        problems.append("compressed image data is truncated")
    elif produced != expected:
        problems.append(f"image data inflates to {produced} bytes, IHDR needs {expected}")


# --------------------------------------------------------------------------- WebP


def walk_riff(data: bytes) -> Layout:
    """List the chunks of a RIFF/WebP file.

    Returns
    -------
    Layout
        Every chunk as a :class:`Part` (``label`` holds VP8X flags in hex),
        ``end`` where the RIFF size says the file ends, and structural problems.
    """
    walk = _Walk("WEBP")
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        walk.problems.append("not a RIFF/WEBP file")
        return walk.freeze()
    declared = 8 + int.from_bytes(data[4:8], "little")
    end = min(declared, len(data))
    if declared > len(data):
        walk.problems.append(f"RIFF size says {declared} bytes, file has {len(data)}")
    position = 12
    while position + 8 <= end:
        kind = data[position : position + 4]
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        span = 8 + size + (size & 1)
        if position + 8 + size > end:
            walk.problems.append(f"chunk {kind!r} at byte {position} runs past the RIFF end")
            break
        label = f"flags=0x{data[position + 8]:02X}" if kind == b"VP8X" and size else ""
        walk.parts.append(Part(kind.decode("latin-1"), position, min(span, end - position), label))
        position += span
    if position < end:
        walk.problems.append(f"{end - position} stray byte(s) inside the RIFF body")
    walk.end = declared
    return walk.freeze()


def _check_webp(data: bytes, problems: list[str]) -> None:
    layout = walk_riff(data)
    problems.extend(layout.problems)
    images = [part for part in layout.parts if part.name in WEBP_IMAGE_CHUNKS]
    if len(images) != 1:
        problems.append(f"{len(images)} image bitstream chunk(s); a release file has exactly one")
    for part in layout.parts:
        if part.name in WEBP_IMAGE_CHUNKS or part.name == "ALPH":
            continue
        if part.name == "VP8X":
            flags = data[part.offset + 8] if part.size > 8 else 0
            for bit, what in WEBP_VP8X_FORBIDDEN_FLAGS.items():
                if flags & bit:
                    problems.append(f"VP8X header announces {what}")
            continue
        if part.name in ("ANIM", "ANMF"):
            problems.append(f"animation chunk {part.name} at byte {part.offset} (extra frames)")
        elif part.name in ("EXIF", "XMP ", "ICCP"):
            problems.append(f"metadata chunk {part.name.strip()} at byte {part.offset}")
        else:
            problems.append(f"chunk {part.name!r} at byte {part.offset} is not allowed in a release file")
    trailing = layout.trailing_bytes(len(data))
    if trailing:
        problems.append(f"{trailing} byte(s) after the RIFF end")


# --------------------------------------------------------------------------- HEIF (ISO-BMFF)


@dataclass(frozen=True, slots=True)
class HeifItems:
    """The item table of a HEIF file: types, references, primary item, colour property kinds."""

    types: dict[int, str]
    references: tuple[tuple[str, int, tuple[int, ...]], ...]
    primary: int | None
    properties: tuple[str, ...]


def _boxes(data: bytes, start: int, end: int, problems: list[str], where: str) -> Iterator[tuple[bytes, int, int, int]]:
    """Yield ``(type, box_start, payload_start, box_end)`` for the boxes in ``data[start:end]``."""
    position = start
    while position < end:
        if position + 8 > end:
            problems.append(f"{end - position} stray byte(s) at the end of {where}")
            return
        size = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        header = 8
        if size == 1:
            if position + 16 > end:
                problems.append(f"truncated box header in {where}")
                return
            size, header = int.from_bytes(data[position + 8 : position + 16], "big"), 16
        elif size == 0:
            size = end - position
        if size < header or position + size > end:
            problems.append(f"box {kind!r} at byte {position} in {where} runs past its container")
            return
        yield kind, position, position + header, position + size
        position += size


def walk_isobmff(data: bytes) -> Layout:
    """List the top-level boxes of a HEIF file and the boxes inside its ``meta`` box.

    Returns
    -------
    Layout
        Top-level boxes named by type; children of ``meta`` as ``meta/<type>``,
        items as ``meta/iinf/<item type>`` (``label`` is the item id),
        properties as ``meta/iprp/<type>`` (``label`` is the colour type of
        ``colr``) and references as ``meta/iref/<type>``.
    """
    walk = _Walk("HEIF")
    problems: list[str] = walk.problems
    for kind, start, payload, end in _boxes(data, 0, len(data), problems, "the file"):
        name = kind.decode("latin-1")
        label = data[payload : payload + 4].decode("latin-1") if kind == b"ftyp" else ""
        if kind == b"mdat":
            label = f"header={payload - start}"  # 8, or 16 with a 64-bit size
        walk.parts.append(Part(name, start, end - start, label))
        walk.end = end
        if kind == b"meta":
            _walk_meta(data, payload + 4, end, walk)
    return walk.freeze()


def _walk_meta(data: bytes, start: int, end: int, walk: _Walk) -> None:
    for kind, box, payload, box_end in _boxes(data, start, end, walk.problems, "meta"):
        name = kind.decode("latin-1")
        walk.parts.append(Part(f"meta/{name}", box, box_end - box))
        try:
            if kind == b"iinf":
                _walk_iinf(data, payload, box_end, walk)
            elif kind == b"iref":
                _walk_iref(data, payload, box_end, walk)
            elif kind == b"iprp":
                _walk_iprp(data, payload, box_end, walk)
            elif kind == b"iloc":
                _walk_iloc(data, payload, box_end, walk)
            elif kind == b"pitm":
                version = data[payload]
                item = int.from_bytes(data[payload + 4 : payload + (6 if version == 0 else 8)], "big")
                walk.parts[-1] = Part("meta/pitm", box, box_end - box, str(item))
        except (IndexError, struct.error):
            walk.problems.append(f"malformed meta/{name} box at byte {box}")


def _walk_iloc(data: bytes, payload: int, end: int, walk: _Walk) -> None:
    """Record every file-offset extent of every item as ``meta/iloc/extent`` (``label`` is the item id)."""
    version = data[payload]
    position = payload + 4
    offset_size, length_size = data[position] >> 4, data[position] & 0x0F
    base_size, index_size = data[position + 1] >> 4, (data[position + 1] & 0x0F) if version in (1, 2) else 0
    position += 2

    def read(size: int) -> int:
        nonlocal position
        if position + size > end:
            raise IndexError("iloc runs past its box")
        value = int.from_bytes(data[position : position + size], "big")
        position += size
        return value

    for _ in range(read(2 if version < 2 else 4)):
        item = read(2 if version < 2 else 4)
        method = read(2) & 0x0F if version in (1, 2) else 0
        read(2)  # data_reference_index
        base = read(base_size)
        for _ in range(read(2)):
            read(index_size)
            offset, length = read(offset_size), read(length_size)
            if method == 0:  # file offsets; 1 (idat) and 2 (item) point inside the meta box
                walk.parts.append(Part("meta/iloc/extent", base + offset, length, str(item)))


def _walk_iinf(data: bytes, payload: int, end: int, walk: _Walk) -> None:
    version = data[payload]
    first = payload + 4 + (2 if version == 0 else 4)
    for kind, box, body, box_end in _boxes(data, first, end, walk.problems, "iinf"):
        if kind != b"infe":
            walk.parts.append(Part(f"meta/iinf/{kind.decode('latin-1')}", box, box_end - box))
            continue
        infe_version = data[body]
        if infe_version < 2:
            walk.parts.append(Part("meta/iinf/legacy", box, box_end - box))
            continue
        id_size = 2 if infe_version == 2 else 4
        item = int.from_bytes(data[body + 4 : body + 4 + id_size], "big")
        item_type = data[body + 6 + id_size : body + 10 + id_size].decode("latin-1")
        walk.parts.append(Part(f"meta/iinf/{item_type}", box, box_end - box, str(item)))


def _walk_iref(data: bytes, payload: int, end: int, walk: _Walk) -> None:
    version = data[payload]
    id_size = 2 if version == 0 else 4
    for kind, box, body, box_end in _boxes(data, payload + 4, end, walk.problems, "iref"):
        source = int.from_bytes(data[body : body + id_size], "big")
        count = int.from_bytes(data[body + id_size : body + id_size + 2], "big")
        first = body + id_size + 2
        targets = [int.from_bytes(data[first + i * id_size : first + (i + 1) * id_size], "big") for i in range(count)]
        label = f"{source}->{','.join(map(str, targets))}"
        walk.parts.append(Part(f"meta/iref/{kind.decode('latin-1')}", box, box_end - box, label))


def _walk_iprp(data: bytes, payload: int, end: int, walk: _Walk) -> None:
    for kind, _box, body, box_end in _boxes(data, payload, end, walk.problems, "iprp"):
        if kind != b"ipco":
            continue
        for prop, prop_box, prop_body, prop_end in _boxes(data, body, box_end, walk.problems, "ipco"):
            label = data[prop_body : prop_body + 4].decode("latin-1") if prop == b"colr" else ""
            walk.parts.append(Part(f"meta/iprp/{prop.decode('latin-1')}", prop_box, prop_end - prop_box, label))


def heif_items(layout: Layout) -> HeifItems:
    """Collect item types, references, the primary item and property kinds from a HEIF layout."""
    types: dict[int, str] = {}
    references: list[tuple[str, int, tuple[int, ...]]] = []
    primary: int | None = None
    properties: list[str] = []
    for part in layout.parts:
        if part.name.startswith("meta/iinf/") and part.label.isdigit():
            types[int(part.label)] = part.name.removeprefix("meta/iinf/")
        elif part.name.startswith("meta/iref/"):
            source, _, targets = part.label.partition("->")
            target_ids = tuple(int(t) for t in targets.split(",") if t)
            references.append((part.name.removeprefix("meta/iref/"), int(source), target_ids))
        elif part.name == "meta/pitm" and part.label.isdigit():
            primary = int(part.label)
        elif part.name.startswith("meta/iprp/"):
            prop = part.name.removeprefix("meta/iprp/")
            properties.append(f"{prop}:{part.label}" if part.label else prop)
    return HeifItems(types, tuple(references), primary, tuple(properties))


def _check_heif(data: bytes, problems: list[str]) -> None:
    layout = walk_isobmff(data)
    problems.extend(layout.problems)
    top = [part for part in layout.parts if "/" not in part.name]
    if not top or top[0].name != "ftyp":
        problems.append("first box is not ftyp")
    elif top[0].label.encode("latin-1") not in HEIF_BRANDS:
        problems.append(f"major brand {top[0].label!r} is not a HEIF still-image brand")
    for part in top[1:]:
        if part.name == "ftyp":
            problems.append(f"second ftyp box at byte {part.offset}")
        elif part.name == "moov":
            problems.append("moov box: an image sequence or video track (extra frames)")
        elif part.name in ("free", "skip"):
            problems.append(f"{part.name} box at byte {part.offset} may hold leftover bytes")
        elif part.name not in ("meta", "mdat"):
            problems.append(f"top-level box {part.name!r} at byte {part.offset} is not allowed in a release file")
    if sum(part.name == "meta" for part in top) != 1:
        problems.append("a HEIF release file needs exactly one meta box")
    for part in layout.parts:
        if part.name.startswith("meta/") and part.name.count("/") == 1:
            child = part.name.removeprefix("meta/").encode("latin-1")
            if child not in HEIF_ALLOWED_META:
                problems.append(f"meta box {part.name} is not allowed in a release file")
        if part.name == "meta/iinf/legacy":
            problems.append("item info entry of version 0/1 cannot be checked")
    items = heif_items(layout)
    for prop in items.properties:
        kind, _, colour = prop.partition(":")
        if kind == "colr" and colour != "nclx":
            problems.append(f"colour property carries an ICC profile ({colour})")
        elif kind == "auxC":
            problems.append("auxiliary image property (depth, alpha or gain map)")
        elif kind.encode("latin-1") not in HEIF_ALLOWED_PROPERTIES:
            problems.append(f"item property {kind!r} is not allowed in a release file")
    allowed_images: set[int] = set()
    if items.primary is None:
        problems.append("no primary item (pitm)")
    else:
        allowed_images.add(items.primary)
    for ref_type, source, targets in items.references:
        derived = items.types.get(source, "").encode("latin-1") in HEIF_DERIVED_ITEMS
        if ref_type == "dimg" and source == items.primary and derived:
            allowed_images.update(targets)  # the tiles of the primary grid are the one picture
        elif ref_type == "thmb":
            problems.append(f"item {source} is a thumbnail of item(s) {', '.join(map(str, targets))}")
        elif ref_type == "auxl":
            problems.append(f"item {source} is an auxiliary image (depth, alpha or gain map)")
        elif ref_type == "cdsc":
            problems.append(f"item {source} is metadata describing item(s) {', '.join(map(str, targets))}")
        else:
            problems.append(f"item reference {ref_type!r} from item {source} is not allowed in a release file")
    for item, item_type in sorted(items.types.items()):
        if item_type == "Exif":
            problems.append(f"EXIF metadata item {item}")
        elif item_type == "mime":
            problems.append(f"MIME metadata item {item} (XMP or other)")
        elif item_type.encode("latin-1") in HEIF_IMAGE_ITEMS:
            if item not in allowed_images:
                problems.append(f"extra image item {item} ({item_type}): thumbnail, burst or second frame")
        else:
            problems.append(f"item {item} of type {item_type!r} is not allowed in a release file")
    _check_mdat_coverage(layout, problems)
    trailing = layout.trailing_bytes(len(data))
    if trailing and not layout.problems:
        problems.append(f"{trailing} byte(s) after the last box")


def _check_mdat_coverage(layout: Layout, problems: list[str]) -> None:
    """Every byte of ``mdat`` must belong to an item: unreferenced bytes are leftovers or hidden data."""
    extents = sorted((part.offset, part.offset + part.size) for part in layout.parts if part.name == "meta/iloc/extent")
    for mdat in (part for part in layout.parts if part.name == "mdat"):
        header = int(mdat.label.removeprefix("header=") or 8)
        cursor, stop, unreferenced = mdat.offset + header, mdat.offset + mdat.size, 0
        for start, finish in extents:
            if finish <= cursor or start >= stop:
                continue
            unreferenced += max(0, start - cursor)
            cursor = max(cursor, finish)
        unreferenced += max(0, stop - cursor)
        if unreferenced:
            problems.append(f"{unreferenced} byte(s) inside mdat at byte {mdat.offset} belong to no item")


# --------------------------------------------------------------------------- entry point


_CHECKS = {"JPEG": _check_jpeg, "PNG": _check_png, "WEBP": _check_webp, "HEIF": _check_heif, "AVIF": _check_heif}


def verify_clean(data: bytes, *, path: str | Path | None = None, decode: bool = True) -> VerifyReport:
    """Check, byte by byte, that an image file carries nothing but one picture.

    Parameters
    ----------
    data
        The whole file.
    path
        Where the bytes came from; only echoed in the report.
    decode
        Also decode the file with Pillow (only after the byte-level checks,
        and only to confirm it is a readable image).

    Returns
    -------
    VerifyReport
        ``ok`` is True only when no problem was found. Problems name the unit
        and byte offset: metadata containers (EXIF, XMP, IPTC, ICC, comments,
        text chunks), embedded thumbnails, second frames, unknown chunks,
        bytes after the end of the image, structural damage. TIFF, GIF and
        any unknown format always fail: they are not release formats.

    Raises
    ------
    TypeError
        If ``data`` is not bytes (a programming error, not bad input).

    Examples
    --------
    >>> import numpy as np
    >>> from deid.config import load_config
    >>> from deid.metadata import encode_clean
    >>> png = encode_clean(np.zeros((8, 8, 3), np.uint8), load_config().output)
    >>> verify_clean(png).ok
    True
    >>> verify_clean(png + b"PK\\x03\\x04").problems
    ('4 byte(s) after IEND',)
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"verify_clean needs bytes, got {type(data).__name__}")
    data = bytes(data)
    where = str(path) if path is not None else None
    fmt = sniff_format(data)
    problems: list[str] = []
    check = _CHECKS.get(fmt)
    if check is None:
        problems.append(f"format {fmt} is not a release format (only JPEG, PNG, WebP, HEIF and AVIF are checked)")
        return VerifyReport(False, fmt, tuple(problems), where)
    check(data, problems)
    if decode and not problems:
        failure = _decode_failure(data)
        if failure:
            problems.append(failure)
    return VerifyReport(not problems, fmt, tuple(problems), where)


def _decode_failure(data: bytes) -> str:
    """Empty when Pillow decodes the bytes as exactly one frame; otherwise why not."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                frames = int(getattr(image, "n_frames", 1) or 1)
                image.load()
    except Exception as error:  # any decoder failure, whatever its type, fails the file: the gate never crashes
        return f"does not decode: {type(error).__name__}: {error}"
    if frames != 1:
        return f"decoder sees {frames} frames"
    return ""
