"""A fast lossless PNG writer for release files: fpng's encoder, with only the chunks a picture needs.

zlib dominates a PNG release (about 1.2 s for a 12 MP photo at level 3 on
this project's machines); fpng (a PyPI wheel) writes the same pixels in about
0.15 s, and any PNG decoder reads them back bit-exact. fpng marks its files
with a private ancillary chunk (``fdEC``); a release file carries nothing but
``IHDR``, ``IDAT`` and ``IEND``, so that chunk is dropped here and the byte
verifier (:func:`deid.verify_bytes.verify_clean`) still checks the result.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from deid.errors import ConfigError
from deid.types import RGBImage

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
KEPT_CHUNKS = frozenset({b"IHDR", b"IDAT", b"IEND"})


def encode_png_fast(pixels: RGBImage) -> bytes:
    """Encode upright RGB pixels as a lossless PNG with fpng, keeping only ``IHDR``, ``IDAT`` and ``IEND``.

    Raises
    ------
    ConfigError
        If the fpng wheel is not installed (choose ``output.png_encoder = "zlib"``).
    ValueError
        If ``pixels`` is not ``H x W x 3`` ``uint8``, or fpng's output is not a well-formed PNG.
    """
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"encode_png_fast needs H x W x 3 uint8 pixels, got {pixels.shape} {pixels.dtype}")
    try:
        import fpng
    except ImportError as error:
        raise ConfigError(
            "output.png_encoder = fpng but the fpng package is not installed",
            hint='pip install fpng, or set output.png_encoder = "zlib"',
        ) from error
    return keep_picture_chunks(bytes(fpng.from_ndarray(np.ascontiguousarray(pixels))))


def keep_picture_chunks(data: bytes) -> bytes:
    """The PNG ``data`` with every chunk but ``IHDR``, ``IDAT`` and ``IEND`` removed (CRCs checked).

    Raises
    ------
    ValueError
        If ``data`` is not a well-formed PNG (bad signature, truncated chunk, bad CRC, no ``IEND``).

    Examples
    --------
    >>> body = b"IHDR" + struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    >>> def chunk(kind, payload):
    ...     return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    >>> png = PNG_SIGNATURE + chunk(b"IHDR", body[4:]) + chunk(b"fdEC", b"x") + chunk(b"IEND", b"")
    >>> b"fdEC" in keep_picture_chunks(png)
    False
    """
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG: bad signature")
    kept = [PNG_SIGNATURE]
    offset = len(PNG_SIGNATURE)
    while offset + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        kind = data[offset + 4 : offset + 8]
        end = offset + 12 + length
        if end > len(data):
            raise ValueError(f"truncated PNG chunk {kind!r} at byte {offset}")
        (crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(data[offset + 4 : end - 4]) != crc:
            raise ValueError(f"bad CRC in PNG chunk {kind!r} at byte {offset}")
        if kind in KEPT_CHUNKS:
            kept.append(data[offset:end])
        offset = end
        if kind == b"IEND":
            return b"".join(kept)
    raise ValueError("PNG without IEND")
