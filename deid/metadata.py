"""Metadata: report what an original carries, and write release files that carry nothing.

Stripping is always a fresh encode of decoded pixels into a new file, never an
in-place edit of the original's segments (edited-in-place files have leaked
cropped-out content from leftover bytes, and phones append previews after the
image ends).
"""

from __future__ import annotations

import io

from PIL import Image

from deid.config import OutputSettings
from deid.types import RGBImage

SUFFIXES = {"png": ".png", "jpeg": ".jpg"}


def encode_clean(pixels: RGBImage, settings: OutputSettings) -> bytes:
    """Encode upright RGB pixels as a new file with no metadata of any kind.

    Returns
    -------
    bytes
        PNG (default) or baseline JPEG bytes: no EXIF, XMP, IPTC, ICC, text
        chunks or comments, and nothing after the end of the image.
    """
    image = Image.fromarray(pixels, "RGB")
    buffer = io.BytesIO()
    if settings.format == "png":
        image.save(buffer, format="PNG", optimize=False, compress_level=6)
    else:
        image.save(buffer, format="JPEG", quality=settings.jpeg_quality, optimize=False, progressive=False)
    return buffer.getvalue()
