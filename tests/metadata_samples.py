"""Image files carrying every kind of metadata container, built in memory for the metadata tests.

Each :class:`Sample` is built from a real photo (``skimage.data.astronaut``,
shrunk) with piexif, Pillow, pillow-heif, or by hand-assembling JPEG
segments, PNG chunks and RIFF chunks, so each test knows exactly which
container it planted. ``problem`` is a fragment the verifier must report;
``container`` and ``category`` are what :func:`deid.metadata.inspect_metadata`
must find.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import piexif
import pillow_heif
from PIL import Image, ImageCms
from skimage import data as skdata

from deid.types import RGBImage

pillow_heif.register_heif_opener()

WIDTH, HEIGHT = 96, 64
PERSON = "Jane Q. Contributor"
SERIAL = "SN-0042-7781"
XMP_PACKET = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:exif="http://ns.adobe.com/exif/1.0/"'
    b' xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:aux="http://ns.adobe.com/exif/1.0/aux/"'
    b' exif:GPSLatitude="51,30.1N" aux:SerialNumber="SN-0042-7781" xmp:CreatorTool="PhoneCam 2.1"'
    b' xmp:CreateDate="2021-06-01T10:00:00">'
    b"<dc:creator><rdf:Seq><rdf:li>Jane Q. Contributor</rdf:li></rdf:Seq></dc:creator>"
    b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


@cache
def photo(width: int = WIDTH, height: int = HEIGHT) -> RGBImage:
    """A real photo (the astronaut image from scikit-image), shrunk to ``width x height``."""
    image = Image.fromarray(skdata.astronaut()).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def pil_photo() -> Image.Image:
    return Image.fromarray(photo())


def save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@cache
def srgb_icc() -> bytes:
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


# --------------------------------------------------------------------------- EXIF


def exif_dict(*, orientation: int = 1) -> dict[str, object]:
    """EXIF with something in every IFD: device, person, time, software, GPS, Interop and a thumbnail."""
    thumbnail = save(pil_photo().resize((16, 12)), "JPEG")
    return {
        "0th": {
            piexif.ImageIFD.Make: b"Acme",
            piexif.ImageIFD.Model: b"PhoneCam X",
            piexif.ImageIFD.Artist: PERSON.encode(),
            piexif.ImageIFD.Software: b"PhoneOS 17.1",
            piexif.ImageIFD.DateTime: b"2021:06:01 10:00:00",
            piexif.ImageIFD.Orientation: orientation,
        },
        "Exif": {
            piexif.ExifIFD.DateTimeOriginal: b"2021:06:01 10:00:00",
            piexif.ExifIFD.BodySerialNumber: SERIAL.encode(),
            piexif.ExifIFD.CameraOwnerName: PERSON.encode(),
            piexif.ExifIFD.LensSerialNumber: b"LENS-99",
            piexif.ExifIFD.MakerNote: b"ACME\x00" + SERIAL.encode() + b"\x00" * 16,
        },
        "GPS": {
            piexif.GPSIFD.GPSLatitudeRef: b"N",
            piexif.GPSIFD.GPSLatitude: ((51, 1), (30, 1), (1234, 100)),
            piexif.GPSIFD.GPSLongitudeRef: b"W",
            piexif.GPSIFD.GPSLongitude: ((0, 1), (7, 1), (3900, 100)),
        },
        "Interop": {piexif.InteropIFD.InteroperabilityIndex: b"R98"},
        "1st": {piexif.ImageIFD.XResolution: (72, 1), piexif.ImageIFD.YResolution: (72, 1)},
        "thumbnail": thumbnail,
    }


def exif_bytes(*, orientation: int = 1) -> bytes:
    """``Exif\\0\\0`` + TIFF structure, as an APP1 payload."""
    return bytes(piexif.dump(exif_dict(orientation=orientation)))


MALFORMED_EXIF_TIFF = b"II*\x00\x08\x00\x00\x00\x05\x00\x0f\x01\x02\x00\x40\x00\x00\x00"  # 5 entries promised, 1 there


# --------------------------------------------------------------------------- JPEG


def jpeg_plain() -> bytes:
    return save(pil_photo(), "JPEG", quality=90)


def jpeg_insert(segments: list[tuple[int, bytes]], base: bytes | None = None) -> bytes:
    """Insert marker segments right after the JFIF APP0 of a clean JPEG."""
    data = base if base is not None else jpeg_plain()
    at = 2 + 2 + int.from_bytes(data[4:6], "big") if data[2:4] == b"\xff\xe0" else 2
    blob = b"".join(bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body for marker, body in segments)
    return data[:at] + blob + data[at:]


def photoshop_resource(resource: int, body: bytes) -> bytes:
    padded = body + (b"\x00" if len(body) & 1 else b"")
    return b"8BIM" + struct.pack(">H", resource) + b"\x00\x00" + struct.pack(">I", len(body)) + padded


def iptc_records() -> bytes:
    def record(dataset: int, value: bytes) -> bytes:
        return b"\x1c\x02" + bytes([dataset]) + struct.pack(">H", len(value)) + value

    return record(80, PERSON.encode()) + record(90, b"Springfield") + record(55, b"20210601")


def jpeg_exif() -> bytes:
    return save(pil_photo(), "JPEG", exif=exif_bytes())


def jpeg_xmp() -> bytes:
    return jpeg_insert([(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + XMP_PACKET)])


def jpeg_iptc() -> bytes:
    resources = photoshop_resource(0x0404, iptc_records()) + photoshop_resource(0x040C, b"\xff\xd8thumb\xff\xd9")
    return jpeg_insert([(0xED, b"Photoshop 3.0\x00" + resources)])


def jpeg_icc() -> bytes:
    return save(pil_photo(), "JPEG", icc_profile=srgb_icc())


def jpeg_mpo() -> bytes:
    second = Image.fromarray(photo()[::-1].copy())
    return save(pil_photo(), "MPO", save_all=True, append_images=[second])


def jpeg_comment() -> bytes:
    return save(pil_photo(), "JPEG", comment=f"taken by {PERSON}".encode())


def jpeg_jfif_thumbnail() -> bytes:
    data = jpeg_plain()
    assert data[2:4] == b"\xff\xe0"
    end = 4 + int.from_bytes(data[4:6], "big")
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01" + b"\x02\x01" + b"\xff\x00\x00" * 2  # a 2x1 RGB thumbnail
    return data[:2] + b"\xff\xe0" + struct.pack(">H", len(app0) + 2) + app0 + data[end:]


def jpeg_jfxx() -> bytes:
    return jpeg_insert([(0xE0, b"JFXX\x00\x10" + save(pil_photo().resize((8, 8)), "JPEG"))])


def jpeg_vendor_app() -> bytes:
    return jpeg_insert([(0xE6, b"GoPro\x00" + SERIAL.encode())])


def jpeg_trailing_zip() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("original.jpg", b"the uncropped picture")
    return jpeg_plain() + archive.getvalue()


def jpeg_trailing_byte() -> bytes:
    return jpeg_plain() + b"\x00"


def jpeg_appended_preview() -> bytes:
    return jpeg_plain() + save(pil_photo().resize((24, 16)), "JPEG")


def jpeg_second_frame_header() -> bytes:
    data = jpeg_plain()
    sof = data.index(b"\xff\xc0")
    length = int.from_bytes(data[sof + 2 : sof + 4], "big")
    segment = data[sof : sof + 2 + length]
    return data[: sof + 2 + length] + segment + data[sof + 2 + length :]


def jpeg_malformed_exif() -> bytes:
    xmp = b"http://ns.adobe.com/xap/1.0/\x00" + XMP_PACKET
    return jpeg_insert([(0xE1, b"Exif\x00\x00" + MALFORMED_EXIF_TIFF), (0xE1, xmp)])


def jpeg_rotated() -> bytes:
    """EXIF orientation 6: the stored pixels must be turned 90 degrees clockwise to stand upright."""
    return save(pil_photo(), "JPEG", exif=exif_bytes(orientation=6))


# --------------------------------------------------------------------------- PNG


def png_plain() -> bytes:
    return save(pil_photo(), "PNG")


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def png_insert(chunks: list[tuple[bytes, bytes]], base: bytes | None = None) -> bytes:
    """Insert chunks right after IHDR of a clean PNG."""
    data = base if base is not None else png_plain()
    at = 8 + 25
    return data[:at] + b"".join(png_chunk(kind, body) for kind, body in chunks) + data[at:]


def png_text() -> bytes:
    return png_insert([(b"tEXt", b"Author\x00" + PERSON.encode())])


def png_ztxt() -> bytes:
    return png_insert([(b"zTXt", b"Comment\x00\x00" + zlib.compress(f"photo of {PERSON}".encode()))])


def png_itxt_xmp() -> bytes:
    return png_insert([(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + XMP_PACKET)])


def png_exif() -> bytes:
    return png_insert([(b"eXIf", exif_bytes()[6:])])


def png_time() -> bytes:
    return png_insert([(b"tIME", struct.pack(">HBBBBB", 2021, 6, 1, 10, 0, 0))])


def png_iccp() -> bytes:
    return png_insert([(b"iCCP", b"sRGB\x00\x00" + zlib.compress(srgb_icc()))])


def png_imagemagick_exif() -> bytes:
    raw = exif_bytes()
    text = f"\nexif\n{len(raw):8d}\n{raw.hex()}\n".encode()
    return png_insert([(b"zTXt", b"Raw profile type exif\x00\x00" + zlib.compress(text))])


def png_private_chunk() -> bytes:
    return png_insert([(b"prVW", b"\x89PNG preview bytes")])


def png_apng() -> bytes:
    second = Image.fromarray(photo()[::-1].copy())
    return save(pil_photo(), "PNG", save_all=True, append_images=[second])


def png_trailing() -> bytes:
    return png_plain() + b"leftover bytes of a longer original"


def png_acropalypse() -> bytes:
    """A valid PNG whose IDAT holds leftover bytes after the zlib stream: the aCropalypse leak."""
    data = png_plain()
    start = data.index(b"IDAT") - 4
    length = int.from_bytes(data[start : start + 4], "big")
    body = data[start + 8 : start + 8 + length] + zlib.compress(b"rest of the uncropped screenshot")
    rest = data[start + 12 + length :]
    return data[:start] + png_chunk(b"IDAT", body) + rest


# --------------------------------------------------------------------------- WebP, HEIF, TIFF, GIF


def webp_plain() -> bytes:
    return save(pil_photo(), "WEBP", quality=80)


def webp_exif() -> bytes:
    return save(pil_photo(), "WEBP", exif=exif_bytes())


def webp_xmp() -> bytes:
    return save(pil_photo(), "WEBP", xmp=XMP_PACKET)


def webp_icc() -> bytes:
    return save(pil_photo(), "WEBP", icc_profile=srgb_icc())


def webp_animated() -> bytes:
    second = Image.fromarray(photo()[::-1].copy())
    return save(pil_photo(), "WEBP", save_all=True, append_images=[second])


def webp_unknown_chunk() -> bytes:
    data = webp_plain()
    extra = b"ABCD" + struct.pack("<I", 6) + b"secret"
    body = data[8:] + extra
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_trailing() -> bytes:
    return webp_plain() + b"\x00trailing"


def heif_plain() -> bytes:
    return save(pil_photo(), "HEIF", quality=80)


def heif_exif() -> bytes:
    return save(pil_photo(), "HEIF", exif=exif_bytes())


def heif_xmp() -> bytes:
    return save(pil_photo(), "HEIF", xmp=XMP_PACKET)


def heif_icc() -> bytes:
    return save(pil_photo(), "HEIF", icc_profile=srgb_icc())


def heif_thumbnail() -> bytes:
    buffer = io.BytesIO()
    pillow_heif.from_pillow(pil_photo()).save(buffer, thumbnails=[32])
    return buffer.getvalue()


def heif_two_images() -> bytes:
    second = Image.fromarray(photo()[::-1].copy())
    return save(pil_photo(), "HEIF", save_all=True, append_images=[second])


def heif_trailing() -> bytes:
    return heif_plain() + b"\x00\x00\x00\x10free" + b"leftover"


def heif_mdat_hidden() -> bytes:
    """Bytes appended inside the last box (mdat) that no item points at: a leftover only the item table reveals."""
    data = heif_plain()
    position = 0
    while position < len(data):
        size, kind = int.from_bytes(data[position : position + 4], "big"), data[position + 4 : position + 8]
        if kind == b"mdat":
            assert position + size == len(data), "mdat is expected to be the last box"
            hidden = b"the uncropped original"
            return data[:position] + struct.pack(">I", size + len(hidden)) + data[position + 4 :] + hidden
        position += size
    raise AssertionError("no mdat box")


def tiff_multipage() -> bytes:
    second = Image.fromarray(photo()[::-1].copy())
    return save(pil_photo(), "TIFF", save_all=True, append_images=[second], tiffinfo={315: PERSON, 271: "Acme"})


def gif_animated() -> bytes:
    second = Image.fromarray(photo()[::-1].copy())
    return save(pil_photo(), "GIF", save_all=True, append_images=[second], comment=PERSON.encode())


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Sample:
    """A built file: how to make it, and what the verifier and inspector must say about it."""

    name: str
    suffix: str
    build: Callable[[], bytes]
    problem: str
    container: str = ""
    category: str = ""
    loadable: bool = True


SAMPLES: tuple[Sample, ...] = (
    Sample("jpeg_exif", ".jpg", jpeg_exif, "APP1 (Exif)", "exif.gps", "location"),
    Sample("jpeg_exif_thumbnail", ".jpg", jpeg_exif, "APP1 (Exif)", "exif.thumbnail", "embedded_image"),
    Sample("jpeg_exif_makernote", ".jpg", jpeg_exif, "APP1 (Exif)", "exif.makernote", "device"),
    Sample("jpeg_exif_interop", ".jpg", jpeg_exif, "APP1 (Exif)", "exif.interop", "person"),
    Sample("jpeg_xmp", ".jpg", jpeg_xmp, "APP1 (http://ns.adobe.com/xap/1.0/)", "xmp", "location"),
    Sample("jpeg_iptc", ".jpg", jpeg_iptc, "APP13 (Photoshop 3.0)", "iptc", "person"),
    Sample("jpeg_photoshop_thumbnail", ".jpg", jpeg_iptc, "APP13", "photoshop.thumbnail", "embedded_image"),
    Sample("jpeg_icc", ".jpg", jpeg_icc, "APP2 (ICC_PROFILE)", "icc", ""),
    Sample("jpeg_mpo", ".jpg", jpeg_mpo, "APP2 (MPF)", "mpf", "embedded_image"),
    Sample("jpeg_comment", ".jpg", jpeg_comment, "comment segment COM", "jpeg.COM", "person"),
    Sample(
        "jpeg_jfif_thumbnail",
        ".jpg",
        jpeg_jfif_thumbnail,
        "JFIF APP0 carries a thumbnail",
        "jfif.thumbnail",
        "embedded_image",
    ),
    Sample("jpeg_jfxx", ".jpg", jpeg_jfxx, "APP0 (JFXX)", "jfif.thumbnail", "embedded_image"),
    Sample("jpeg_vendor_app6", ".jpg", jpeg_vendor_app, "APP6 (GoPro)", "jpeg.APP6", "device"),
    Sample("jpeg_trailing_zip", ".jpg", jpeg_trailing_zip, "byte(s) after EOI", "trailing", "other"),
    Sample("jpeg_trailing_byte", ".jpg", jpeg_trailing_byte, "1 byte(s) after EOI", "trailing", "other"),
    Sample("jpeg_appended_preview", ".jpg", jpeg_appended_preview, "byte(s) after EOI", "trailing", "embedded_image"),
    Sample("jpeg_second_frame", ".jpg", jpeg_second_frame_header, "second frame header", "", "", loadable=False),
    Sample("jpeg_malformed_exif", ".jpg", jpeg_malformed_exif, "APP1 (Exif)", "xmp", "person"),
    Sample("jpeg_rotated", ".jpg", jpeg_rotated, "APP1 (Exif)", "exif.ifd0", "device"),
    Sample("png_text", ".png", png_text, "metadata chunk tEXt (Author)", "png.tEXt", "person"),
    Sample("png_ztxt", ".png", png_ztxt, "metadata chunk zTXt (Comment)", "png.zTXt", "person"),
    Sample("png_itxt_xmp", ".png", png_itxt_xmp, "metadata chunk iTXt (XML:com.adobe.xmp)", "png.iTXt", "location"),
    Sample("png_exif", ".png", png_exif, "metadata chunk eXIf", "png.eXIf", "location"),
    Sample("png_time", ".png", png_time, "metadata chunk tIME", "png.tIME", "time"),
    Sample("png_iccp", ".png", png_iccp, "metadata chunk iCCP", "png.iCCP", ""),
    Sample("png_magick_exif", ".png", png_imagemagick_exif, "zTXt (Raw profile type exif)", "exif.gps", "location"),
    Sample("png_private_chunk", ".png", png_private_chunk, "prVW", "png.prVW", "other"),
    Sample("png_apng", ".png", png_apng, "animation chunk acTL", "frames", "embedded_image"),
    Sample("png_trailing", ".png", png_trailing, "byte(s) after IEND", "trailing", "other"),
    Sample(
        "png_acropalypse",
        ".png",
        png_acropalypse,
        "bytes follow the end of the compressed image data",
        "png.idat_leftover",
        "embedded_image",
    ),
    Sample("webp_exif", ".webp", webp_exif, "metadata chunk EXIF", "webp.EXIF", "location"),
    Sample("webp_xmp", ".webp", webp_xmp, "metadata chunk XMP", "webp.XMP", "person"),
    Sample("webp_icc", ".webp", webp_icc, "metadata chunk ICCP", "webp.ICCP", ""),
    Sample("webp_animated", ".webp", webp_animated, "animation chunk", "frames", "embedded_image"),
    Sample("webp_unknown_chunk", ".webp", webp_unknown_chunk, "chunk 'ABCD'", "webp.ABCD", "other"),
    Sample("webp_trailing", ".webp", webp_trailing, "after the RIFF end", "trailing", "other"),
    Sample("heif_exif", ".heic", heif_exif, "EXIF metadata item", "heif.Exif", "location"),
    Sample("heif_xmp", ".heic", heif_xmp, "MIME metadata item", "heif.mime", "person"),
    Sample("heif_icc", ".heic", heif_icc, "ICC profile", "icc", ""),
    Sample("heif_thumbnail", ".heic", heif_thumbnail, "is a thumbnail", "heif.thumbnail", "embedded_image"),
    Sample("heif_two_images", ".heic", heif_two_images, "extra image item", "frames", "embedded_image"),
    Sample("heif_trailing_free", ".heic", heif_trailing, "free box", "heif.free", ""),
    Sample("heif_mdat_hidden", ".heic", heif_mdat_hidden, "inside mdat"),
    Sample("tiff_multipage", ".tiff", tiff_multipage, "not a release format", "frames", "person"),
    Sample("gif_animated", ".gif", gif_animated, "not a release format", "gif.comment", "person"),
)

CLEAN: tuple[tuple[str, Callable[[], bytes]], ...] = (
    ("png_pillow", png_plain),
    ("jpeg_pillow", jpeg_plain),
    ("jpeg_progressive", lambda: save(pil_photo(), "JPEG", progressive=True)),
    ("png_palette", lambda: save(pil_photo().convert("P"), "PNG")),
    ("webp_lossy", webp_plain),
    ("webp_lossless", lambda: save(pil_photo(), "WEBP", lossless=True)),
    ("heif", heif_plain),
)
