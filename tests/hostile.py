"""Build hostile and broken contributions, each with the outcome deid must give it.

Every file here is generated: hand-assembled headers for bombs and malformed
EXIF, Pillow/OpenCV for odd colour modes and animations, scikit-image photos
for faces. :func:`write_hostile_batch` lays them out as a contributions folder.
"""

from __future__ import annotations

import csv
import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import piexif
from PIL import Image
from skimage import data

from deid.cases import INPUT_COLUMNS

OK = "ok"  # decoded and processed: released, or held only by the region policy, never for an input error


@dataclass(frozen=True)
class HostileFile:
    """A file and the outcome expected for it: ``OK`` or an error code plus words from the reason.

    ``note`` is a reason an ``OK`` file must carry in the ledger (the name-mismatch note of a file
    whose name lies about its content).
    """

    name: str
    payload: bytes
    expect: str
    reason_words: str = ""
    note: str = ""


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header promises ``width x height`` RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def skin_photo(seed: int, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A plain generated skin patch with a red lesion: nothing identifying on it."""
    rng = np.random.default_rng(seed)
    width, height = size
    base = np.array([205.0, 160.0, 130.0]) * (1 + rng.normal(0, 0.02, (height, width, 1)))
    yy, xx = np.mgrid[0:height, 0:width]
    lesion = np.exp(-(((yy - height / 2) ** 2 + (xx - width / 2) ** 2) / (2 * (min(size) / 6) ** 2)))[..., None] * 0.5
    pixels = base * (1 - lesion) + np.array([190.0, 50.0, 55.0]) * lesion
    return np.clip(pixels, 0, 255).astype(np.uint8)


def jpeg_bomb() -> bytes:
    """A real JPEG whose SOF0 header is patched to claim 60000 x 60000 pixels."""
    jpeg = bytearray(_encode(Image.fromarray(skin_photo(1, (64, 64))), "JPEG"))
    sof = jpeg.find(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)
    return bytes(jpeg)


def tiff_bomb() -> bytes:
    """A little-endian TIFF whose one IFD claims a 100000 x 100000 RGB image in 3 bytes of strip."""
    entries = [
        (256, 4, 1, 100_000),  # ImageWidth
        (257, 4, 1, 100_000),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 2),  # Photometric: RGB
        (273, 4, 1, 8 + 2 + 12 * 9 + 4),  # StripOffsets: right after the IFD
        (277, 3, 1, 3),  # SamplesPerPixel
        (278, 4, 1, 100_000),  # RowsPerStrip
        (279, 4, 1, 3),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<H", value) + b"\x00\x00" if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + b"\x00\x00\x00"


def jpeg_with_app1(app1_body: bytes) -> bytes:
    """A JPEG with a hand-built APP1 segment inserted right after SOI."""
    jpeg = _encode(Image.fromarray(skin_photo(2)), "JPEG", quality=85)
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1_body) + 2) + app1_body + jpeg[2:]


def exif_loop() -> bytes:
    """EXIF whose IFD0 'next IFD' pointer points back at itself."""
    tiff = (
        b"MM\x00\x2a\x00\x00\x00\x08"
        + struct.pack(">H", 1)
        + struct.pack(">HHI", 0x0112, 3, 1)
        + struct.pack(">HH", 6, 0)
        + struct.pack(">I", 8)
    )
    return jpeg_with_app1(b"Exif\x00\x00" + tiff)


def exif_huge_count() -> bytes:
    """EXIF with a Make tag claiming two billion bytes."""
    tiff = (
        b"MM\x00\x2a\x00\x00\x00\x08"
        + struct.pack(">H", 1)
        + struct.pack(">HHII", 0x010F, 2, 0x7FFFFFFF, 0x100)
        + struct.pack(">I", 0)
    )
    return jpeg_with_app1(b"Exif\x00\x00" + tiff)


def exif_huge_long_count() -> bytes:
    """EXIF with a LONG tag claiming 0xFFFFFFFF values: found by the fuzzer, it once made piexif
    build a multi-gigabyte format string (``"L" * count``) and exhausted the machine's memory."""
    tiff = (
        b"MM\x00\x2a\x00\x00\x00\x08"
        + struct.pack(">H", 1)
        + struct.pack(">HHII", 0x0100, 4, 0xFFFFFFFF, 0x1A)
        + struct.pack(">I", 0)
    )
    return jpeg_with_app1(b"Exif\x00\x00" + tiff)


def exif_bad_offset() -> bytes:
    """EXIF whose first IFD offset points far past the end of the segment."""
    return jpeg_with_app1(b"Exif\x00\x00MM\x00\x2a\x7f\xff\xff\xf0")


def orientation(value: int) -> bytes:
    """A JPEG with an EXIF orientation of ``value`` (valid range 1..8)."""
    return _encode(
        Image.fromarray(skin_photo(3)), "JPEG", exif=piexif.dump({"0th": {piexif.ImageIFD.Orientation: value}})
    )


# The inverse of each EXIF orientation: applied to an upright picture it gives the pixels a camera
# stores with that tag, so that the tag's own transform turns them upright again.
STORED_AS: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def asymmetric_picture(width: int = 96, height: int = 64) -> np.ndarray:
    """An upright picture no flip or rotation maps onto itself: four coloured quadrants and a white corner mark."""
    pixels = np.zeros((height, width, 3), np.uint8)
    half_h, half_w = height // 2, width // 2
    pixels[:half_h, :half_w] = (220, 40, 40)
    pixels[:half_h, half_w:] = (40, 40, 220)
    pixels[half_h:, :half_w] = (230, 200, 60)
    pixels[half_h:, half_w:] = (40, 180, 60)
    pixels[: height // 6, : width // 8] = 255
    return pixels


def oriented(fmt: str, orientation: int, picture: np.ndarray | None = None) -> bytes:
    """``picture`` stored as a camera would with EXIF ``orientation`` (1..8), encoded as ``fmt``."""
    upright = Image.fromarray(asymmetric_picture() if picture is None else picture)
    stored = upright.transpose(STORED_AS[orientation]) if orientation in STORED_AS else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    options: dict[str, object] = {"quality": 95} if fmt in ("JPEG", "WEBP", "HEIF", "AVIF") else {}
    return _encode(stored, fmt, exif=exif.tobytes(), **options)


def fax_tiff(*, damaged: bool) -> bytes:
    """A CCITT G3 (fax) TIFF of a checkerboard in 4 strips; ``damaged`` fills strip 2 with random bytes.

    libtiff's fax decoder reports "Bad code word" for the damaged strip and carries on, leaving it
    white; Pillow raises nothing. This is the partial decode the loader must refuse.
    """
    yy, xx = np.mgrid[0:256, 0:256]
    board = Image.fromarray((xx // 16 + yy // 16) % 2 == 0)
    data = bytearray(_encode(board, "TIFF", compression="group3", tiffinfo={278: 64}))
    if damaged:
        with Image.open(io.BytesIO(bytes(data))) as image:
            offset, count = image.tag_v2[273][1], image.tag_v2[279][1]
        data[offset : offset + count] = np.random.default_rng(1).integers(0, 256, count, dtype=np.uint8).tobytes()
    return bytes(data)


def bigtiff(*, make: str = "") -> bytes:
    """A BigTIFF (8-byte offsets) skin patch; ``make`` sets the IFD0 camera make."""
    exif = Image.Exif()
    if make:
        exif[0x010F] = make
    return _encode(Image.fromarray(skin_photo(21, (160, 120))), "TIFF", big_tiff=True, exif=exif.tobytes())


def face_hidden_by_alpha() -> bytes:
    """An RGBA PNG: the astronaut's face is in the colour channels but fully transparent."""
    rgba = np.dstack([data.astronaut(), np.full((512, 512), 255, np.uint8)])
    rgba[0:260, 110:340, 3] = 0
    return _encode(Image.fromarray(rgba, "RGBA"), "PNG")


def animated_gif() -> bytes:
    """Two frames: a skin patch, then the astronaut's face (frame 2 must never be published)."""
    first = Image.fromarray(skin_photo(4, (256, 256))).convert("P")
    second = Image.fromarray(np.asarray(Image.fromarray(data.astronaut()).resize((256, 256)))).convert("P")
    return _encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)


def animated_webp() -> bytes:
    frames = [Image.fromarray(skin_photo(5, (256, 256))), Image.fromarray(data.astronaut()).resize((256, 256))]
    return _encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100)


def apng() -> bytes:
    frames = [Image.fromarray(skin_photo(6, (256, 256))), Image.fromarray(data.astronaut()).resize((256, 256))]
    return _encode(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100)


def multipage_tiff() -> bytes:
    pages = [Image.fromarray(skin_photo(7, (256, 256))), Image.fromarray(data.astronaut()).resize((256, 256))]
    return _encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])


def png16(channels: int) -> bytes:
    """A 16-bit PNG (grey or RGB) written by OpenCV."""
    base = skin_photo(8).astype(np.uint16) * 257
    array = base if channels == 3 else base[..., 0]
    ok, encoded = cv2.imencode(".png", array[..., ::-1] if channels == 3 else array)
    assert ok
    return encoded.tobytes()


def hostile_files() -> list[HostileFile]:
    """Every hostile image case with its expected outcome."""
    good_jpeg = _encode(Image.fromarray(skin_photo(10)), "JPEG", quality=88)
    noise = np.random.default_rng(11).integers(0, 256, (1100, 1100, 3), dtype=np.uint8)
    return [
        HostileFile("good_1.jpg", good_jpeg, OK),
        HostileFile("good_2.png", _encode(Image.fromarray(skin_photo(12)), "PNG"), OK),
        HostileFile("bomb_100k.png", png_bomb(100_000, 100_000), "unreadable_image", "decompression bomb"),
        HostileFile("bomb_9k.png", png_bomb(9_000, 9_000), "unreadable_image", "pixel limit"),
        HostileFile("bomb.jpg", jpeg_bomb(), "unreadable_image", "decompression bomb"),
        HostileFile("bomb.tif", tiff_bomb(), "unreadable_image", "decompression bomb"),
        HostileFile(
            "oversize.png", _encode(Image.fromarray(noise), "PNG", compress_level=0), "unreadable_image", "byte limit"
        ),
        HostileFile("empty.jpg", b"", "unreadable_image", "empty"),
        HostileFile("truncated.jpg", good_jpeg[: len(good_jpeg) // 2], "unreadable_image", "truncated"),
        HostileFile("truncated.png", _encode(Image.fromarray(skin_photo(13)), "PNG")[:5000], "unreadable_image", ""),
        # The content decides the format, not the name: an allowed format under a lying name is
        # processed, and the ledger notes that the name lied. (These were refused before issue 17.)
        HostileFile(
            "png_named.jpg",
            _encode(Image.fromarray(skin_photo(14)), "PNG"),
            OK,
            note="input.name_mismatch: named .jpg, content PNG",
        ),
        HostileFile(
            "webp_named.jpg",
            _encode(Image.fromarray(skin_photo(22)), "WEBP", quality=90),
            OK,
            note="input.name_mismatch: named .jpg, content WEBP",
        ),
        HostileFile("phone.avif", _encode(Image.fromarray(skin_photo(23)), "AVIF", quality=90), OK),
        HostileFile(
            "avif_named.heic",
            _encode(Image.fromarray(skin_photo(24)), "AVIF", quality=90),
            OK,
            note="input.name_mismatch: named .heic, content AVIF",
        ),
        HostileFile("orientation_6.tif", oriented("TIFF", 6, skin_photo(25)), OK),
        HostileFile("bigtiff.tif", bigtiff(), OK),
        HostileFile("fax_bad_strip.tif", fax_tiff(damaged=True), "unreadable_image", "partial decode"),
        HostileFile(
            "video_named.heic",
            struct.pack(">I", 24) + b"ftypisom\x00\x00\x02\x00isommp41" + b"\x00" * 64,
            "unsupported_format",
            "not a recognised image format",
        ),
        HostileFile("text_named.jpg", b"just some text, not a picture\n", "unsupported_format", "not a recognised"),
        HostileFile("polyglot_zip.jpg", good_jpeg + b"PK\x03\x04" + b"\x14\x00" * 40, "unsupported_format", "polyglot"),
        HostileFile(
            "polyglot_html.jpg", good_jpeg + b"<html><script>alert(1)</script></html>", "unsupported_format", "polyglot"
        ),
        HostileFile(
            "svg_named.png",
            b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><rect/></svg>',
            "unsupported_format",
            "not a recognised",
        ),
        HostileFile(
            "pdf_named.jpg",
            b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
            "unsupported_format",
            "not a recognised",
        ),
        HostileFile("exif_loop.jpg", exif_loop(), OK),
        HostileFile("exif_huge_count.jpg", exif_huge_count(), OK),
        HostileFile("exif_bad_offset.jpg", exif_bad_offset(), OK),
        HostileFile("exif_huge_long_count.jpg", exif_huge_long_count(), OK),
        HostileFile("orientation_42.jpg", orientation(42), OK),
        HostileFile("cmyk.jpg", _encode(Image.fromarray(skin_photo(15)).convert("CMYK"), "JPEG"), OK),
        HostileFile("grey.jpg", _encode(Image.fromarray(skin_photo(16)).convert("L"), "JPEG"), OK),
        HostileFile("grey16.png", png16(1), OK),
        HostileFile("rgb16.png", png16(3), OK),
        HostileFile("palette.png", _encode(Image.fromarray(skin_photo(17)).convert("P"), "PNG", transparency=0), OK),
        HostileFile("alpha_face.png", face_hidden_by_alpha(), OK),
        HostileFile("animated.gif", animated_gif(), OK),
        HostileFile("animated.webp", animated_webp(), OK),
        HostileFile("animated_apng.png", apng(), OK),
        HostileFile("multipage.tif", multipage_tiff(), OK),
        HostileFile("one_pixel.png", _encode(Image.new("RGB", (1, 1), (200, 150, 120)), "PNG"), OK),
        HostileFile("extreme_aspect.png", _encode(Image.fromarray(skin_photo(18, (6000, 3))), "PNG"), OK),
        HostileFile("фото_пациента_😀.jpg", _encode(Image.fromarray(skin_photo(19)), "JPEG"), OK),
        HostileFile("n" * 200 + ".jpg", _encode(Image.fromarray(skin_photo(20)), "JPEG"), OK),
    ]


HEADER = list(INPUT_COLUMNS)
FORMULAS = ('=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)")


@dataclass(frozen=True)
class HostileBatch:
    """A contributions folder plus what deid must do with each part of it."""

    root: Path
    files: dict[str, HostileFile]
    bad_rows: dict[int, str]  # CSV row number -> words expected in the reason
    unsafe_paths: dict[str, str]  # contribution id -> words expected in its held reason
    outside_secret: Path


def write_hostile_batch(root: Path) -> HostileBatch:
    """Lay out every hostile file and row as one contributions folder (``cases.csv`` + ``images/``)."""
    images = root / "images"
    images.mkdir(parents=True)
    files = {f.name: f for f in hostile_files()}
    for item in files.values():
        (images / item.name).write_bytes(item.payload)
    outside = root.parent / f"{root.name}_outside"
    outside.mkdir()
    secret = outside / "secret.jpg"
    secret.write_bytes(files["good_1.jpg"].payload)
    os.symlink(secret, images / "link_out.jpg")
    rows: list[list[str]] = []
    for number, item in enumerate(files.values(), start=1):
        formula = FORMULAS[number % len(FORMULAS)]
        # Every contribution has its own self-reported answers; formula-like text in the free cells.
        rows.append(
            [
                f"h{number:02d}",
                "2025-07-01T10:00:00Z",
                "40",
                "female",
                "FST3",
                "white",
                "arm",
                "itching",
                "flat",
                formula,
                formula,
                formula,
                item.name,
                "CLOSE_UP",
                "",
                "",
                "",
                "",
            ]
        )
    bad_rows = {}
    unsafe = {}
    rows.append(
        ["", "2025-07-01T10:00:00Z", "40", "", "", "", "", "", "", "", "", "", "good_1.jpg", "", "", "", "", ""]
    )
    bad_rows[len(rows) + 1] = "contribution_id"
    rows.append(
        ["x01", "2025-07-01T10:00:00Z", "forty", "", "", "", "", "", "", "", "", "", "good_1.jpg", "", "", "", "", ""]
    )
    bad_rows[len(rows) + 1] = "not a whole number"
    rows.append(
        ["h01", "2025-07-01T10:00:00Z", "40", "", "", "", "", "", "", "", "", "", "good_2.png", "", "", "", "", ""]
    )
    bad_rows[len(rows) + 1] = "duplicate contribution_id"
    rows.append(
        [
            "x02",
            "2025-07-01T10:00:00Z",
            "40",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "good_1.jpg",
            "SIDEWAYS",
            "",
            "",
            "",
            "",
        ]
    )
    bad_rows[len(rows) + 1] = "shot_type_1"
    for contribution_id, name, words in (
        ("p01", f"../{root.name}_outside/secret.jpg", "leaves the images folder"),
        ("p02", str(secret), "leaves the images folder"),
        ("p03", "link_out.jpg", "resolves outside"),
        ("p04", "absent.jpg", "not found"),
        ("p05", "x" * 300 + ".jpg", "cannot be opened"),
    ):
        rows.append(
            [
                contribution_id,
                "2025-07-01T10:00:00Z",
                "40",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                name,
                "",
                "",
                "",
                "",
                "",
            ]
        )
        unsafe[contribution_id] = words
    with open(root / "cases.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
    return HostileBatch(root, files, bad_rows, unsafe, secret)
