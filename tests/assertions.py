"""Assertions about the properties that matter, shared by the whole suite."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deid.types import Box, RGBImage


def assert_no_pixel_survives(box: Box, after: RGBImage, fill_rgb: Sequence[int]) -> None:
    """Every pixel of ``after`` inside ``box`` (clipped) equals the fill colour."""
    clipped = box.clip(after.shape)
    patch = after[clipped.top : clipped.bottom, clipped.left : clipped.right]
    bad = np.any(patch != np.asarray(fill_rgb, dtype=np.uint8), axis=-1)
    assert not bad.any(), f"{int(bad.sum())} pixel(s) inside {box} are not the fill colour {tuple(fill_rgb)}"


_JPEG_METADATA_MARKERS = {0xE0 + n: f"APP{n}" for n in range(16)} | {0xFE: "COM"}


def assert_no_metadata_segments(data: bytes) -> None:
    """No metadata container in PNG or JPEG bytes, and nothing after the image ends.

    A minimal independent walk for tests; the release verifier is
    :mod:`deid.verify_bytes`, which this deliberately does not call.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        position, allowed = 8, {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS"}
        while position < len(data):
            length = int.from_bytes(data[position : position + 4], "big")
            kind = data[position + 4 : position + 8]
            assert kind in allowed, f"PNG carries a {kind!r} chunk"
            position += 12 + length
            if kind == b"IEND":
                break
        assert position == len(data), f"{len(data) - position} byte(s) after PNG IEND"
        return
    assert data[:2] == b"\xff\xd8", "neither PNG nor JPEG"
    position = 2
    while position < len(data):
        assert data[position] == 0xFF, f"bad JPEG marker at {position}"
        marker = data[position + 1]
        if marker == 0xDA:  # start of scan: entropy data follows until EOI
            end = data.rfind(b"\xff\xd9")
            assert end == len(data) - 2, "bytes after JPEG EOI"
            return
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == 0xE0 and data[position + 4 : position + 9] == b"JFIF\x00":
            position += 2 + length
            continue
        assert marker not in _JPEG_METADATA_MARKERS, f"JPEG carries a {_JPEG_METADATA_MARKERS[marker]} segment"
        position += 2 + length
    raise AssertionError("JPEG has no scan")
