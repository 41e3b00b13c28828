"""The fast PNG writer: released bytes pass the verifier and decode to exactly the pixels deid rendered."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage import data

from deid.config import OutputSettings
from deid.metadata import encode_clean
from deid.png import PNG_SIGNATURE, encode_png_fast, keep_picture_chunks
from deid.verify_bytes import verify_clean
from tests.assertions import assert_no_metadata_segments

FPNG = OutputSettings("png", 92, 3, "fpng")


def _decoded(payload: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(payload)) as opened:
        assert opened.format == "PNG"
        return np.asarray(opened.convert("RGB"))


@pytest.mark.parametrize(
    "pixels",
    [
        pytest.param(data.astronaut(), id="astronaut"),
        pytest.param(np.ascontiguousarray(data.chelsea()[::-1, ::3]), id="chelsea-strided"),
        pytest.param(np.zeros((1, 1, 3), dtype=np.uint8), id="1x1"),
        pytest.param(np.full((1, 4097, 3), 255, dtype=np.uint8), id="one-row"),
    ],
)
def test_fpng_output_is_verified_and_bit_exact(pixels: np.ndarray) -> None:
    payload = encode_clean(pixels, FPNG)
    assert verify_clean(payload).ok
    assert_no_metadata_segments(payload)
    assert b"fdEC" not in payload
    assert np.array_equal(_decoded(payload), pixels)


@settings(max_examples=25, deadline=None)
@given(
    height=st.integers(1, 64),
    width=st.integers(1, 64),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_image_round_trips_exactly(height: int, width: int, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    payload = encode_png_fast(pixels)
    assert verify_clean(payload, decode=False).ok
    assert np.array_equal(_decoded(payload), pixels)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@pytest.mark.parametrize(
    "png",
    [
        pytest.param(b"GIF89a" + b"\0" * 20, id="not-png"),
        pytest.param(PNG_SIGNATURE + _chunk(b"IHDR", b"\0" * 13)[:-1] + b"\0", id="bad-crc"),
        pytest.param(PNG_SIGNATURE + _chunk(b"IHDR", b"\0" * 13)[:10], id="truncated"),
        pytest.param(PNG_SIGNATURE + _chunk(b"IHDR", b"\0" * 13), id="no-iend"),
    ],
)
def test_malformed_encoder_output_is_refused(png: bytes) -> None:
    with pytest.raises(ValueError):
        keep_picture_chunks(png)


def test_zlib_encoder_still_available() -> None:
    pixels = data.astronaut()[:64, :64]
    payload = encode_clean(pixels, OutputSettings("png", 92, 3, "zlib"))
    assert verify_clean(payload).ok and np.array_equal(_decoded(payload), pixels)
