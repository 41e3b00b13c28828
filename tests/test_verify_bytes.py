"""The independent byte-level verifier: passes clean single-frame files, fails every container planted."""

from __future__ import annotations

import dataclasses
import io
import json
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from deid.config import Config, OutputSettings, load_config
from deid.metadata import encode_clean
from deid.verify_bytes import verify_clean, walk_jpeg, walk_png
from tests.assertions import assert_no_metadata_segments
from tests.metadata_samples import CLEAN, SAMPLES, Sample, heif_plain, photo, png_chunk, png_plain, webp_plain

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture(scope="module")
def clean_png(config: Config) -> bytes:
    return encode_clean(photo(), config.output)


@pytest.fixture(scope="module")
def clean_jpeg(config: Config) -> bytes:
    return encode_clean(photo(), dataclasses.replace(config.output, format="jpeg"))


def test_encode_clean_output_passes_and_agrees_with_the_test_walker(clean_png: bytes, clean_jpeg: bytes) -> None:
    for data, fmt in ((clean_png, "PNG"), (clean_jpeg, "JPEG")):
        report = verify_clean(data)
        assert report.ok, report.problems
        assert report.format == fmt
        assert_no_metadata_segments(data)  # a second, independent walk agrees


@pytest.mark.parametrize(("name", "build"), [pytest.param(name, build, id=name) for name, build in CLEAN])
def test_clean_single_frame_files_pass(name: str, build: Callable[[], bytes]) -> None:
    report = verify_clean(build())
    assert report.ok, f"{name}: {report.problems}"


@pytest.mark.parametrize("sample", [pytest.param(sample, id=sample.name) for sample in SAMPLES])
def test_every_planted_container_fails(sample: Sample) -> None:
    """Each sample carries one kind of container; the verdict must fail and name it."""
    report = verify_clean(sample.build())
    assert not report.ok
    assert any(sample.problem in line for line in report.problems), report.problems


def test_every_devdata_original_fails(devdata: Path) -> None:
    """Real camera and phone originals all carry metadata: none may verify as clean."""
    files = sorted(p for p in (devdata / "metadata").iterdir() if p.suffix.lower() != ".json")
    assert len(files) >= 30
    passed = [file.name for file in files if verify_clean(file.read_bytes(), decode=False).ok]
    assert passed == []


@settings(max_examples=40, deadline=None)
@given(extra=st.binary(min_size=1, max_size=64))
def test_any_appended_bytes_fail(extra: bytes) -> None:
    for data in (_CLEAN_PNG, _CLEAN_JPEG):
        assert not verify_clean(data + extra, decode=False).ok


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(min_value=1, max_value=400))
def test_any_truncation_fails(cut: int) -> None:
    for data in (_CLEAN_PNG, _CLEAN_JPEG):
        assert not verify_clean(data[: len(data) - cut], decode=False).ok


@settings(max_examples=60, deadline=None)
@given(
    which=st.sampled_from(["png", "jpeg", "webp", "heif"]),
    edits=st.lists(st.tuples(st.floats(0.0, 0.999), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_damaged_files_are_reported_never_raised(which: str, edits: list[tuple[float, int]]) -> None:
    """Corrupt bytes anywhere give a verdict (usually a failing one), never an exception: the gate must not crash."""
    data = bytearray(_DAMAGEABLE[which])
    for where, value in edits:
        data[int(where * len(data))] = value
    report = verify_clean(bytes(data))
    assert report.ok in (True, False) and report.format


def test_png_chunk_with_bad_crc_fails() -> None:
    data = bytearray(png_plain())
    data[8 + 8] ^= 0x01  # first byte of IHDR width: CRC no longer matches
    report = verify_clean(bytes(data))
    assert any("bad CRC" in problem for problem in report.problems)


def test_png_idat_that_inflates_to_the_wrong_size_fails() -> None:
    """A PNG whose image data is shorter than IHDR promises, even with valid CRCs and zlib."""
    data = png_plain()
    start = data.index(b"IDAT") - 4
    length = int.from_bytes(data[start : start + 4], "big")
    short = png_chunk(b"IDAT", zlib.compress(b"\x00" * 10))
    report = verify_clean(data[:start] + short + data[start + 12 + length :])
    assert any("inflates to" in problem for problem in report.problems)


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"\x78\x9c\xff\xff\xff\xff garbage", "corrupt"),  # not deflate: reported, never raised
        (zlib.compress(b"\x00" * 10_000_000), "more than"),  # a bomb: inflating stops one byte past IHDR's size
        (zlib.compress(b"\x00" * 10) + b"after", "bytes follow"),  # bytes after the stream (aCropalypse)
    ],
)
def test_png_idat_problems_are_named(payload: bytes, problem: str) -> None:
    data = png_plain()
    start = data.index(b"IDAT") - 4
    length = int.from_bytes(data[start : start + 4], "big")
    report = verify_clean(data[:start] + png_chunk(b"IDAT", payload) + data[start + 12 + length :])
    assert not report.ok and any(problem in line for line in report.problems), report.problems


def test_png_image_data_split_over_many_idat_chunks_verifies() -> None:
    """Encoders split the zlib stream over chunks; inflating chunk by chunk must accept that."""
    data = png_plain()
    start = data.index(b"IDAT") - 4
    length = int.from_bytes(data[start : start + 4], "big")
    stream = data[start + 8 : start + 8 + length]
    pieces = b"".join(png_chunk(b"IDAT", stream[i : i + 97]) for i in range(0, len(stream), 97))
    report = verify_clean(data[:start] + pieces + data[start + 12 + length :])
    assert report.ok, report.problems


def test_walkers_list_segments_and_chunks_in_order(clean_png: bytes, clean_jpeg: bytes) -> None:
    chunks = [part.name for part in walk_png(clean_png).parts]
    assert chunks[0] == "IHDR" and chunks[-1] == "IEND" and "IDAT" in chunks
    names = [part.name for part in walk_jpeg(clean_jpeg).parts]
    assert names[0] == "SOI" and names[-1] == "EOI" and "SOS" in names and "ECS" in names
    assert walk_jpeg(clean_jpeg).end == len(clean_jpeg)


def test_tiff_and_gif_are_never_release_formats() -> None:
    for fmt in ("TIFF", "GIF"):
        buffer = io.BytesIO()
        Image.fromarray(photo()).save(buffer, format=fmt)
        report = verify_clean(buffer.getvalue())
        assert not report.ok and "not a release format" in report.problems[0]


def test_decode_double_check_catches_what_parses_but_does_not_decode() -> None:
    """A JPEG whose segments are well formed but whose Huffman tables are garbage."""
    data = bytearray(encode_clean(np.zeros((16, 16, 3), np.uint8), _jpeg_settings()))
    dht = bytes(data).index(b"\xff\xc4")
    for i in range(dht + 5, dht + 21):
        data[i] = 0  # no Huffman codes of any length: nothing can be decoded
    report = verify_clean(bytes(data))
    assert not report.ok
    assert any("does not decode" in problem for problem in report.problems)


def test_report_to_json_is_serialisable(clean_png: bytes) -> None:
    payload = verify_clean(clean_png + b"x", path="a.png").to_json()
    assert json.loads(json.dumps(payload)) == {
        "file": "a.png",
        "ok": False,
        "format": "PNG",
        "problems": ["1 byte(s) after IEND"],
    }


def test_non_bytes_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        verify_clean("not bytes")  # type: ignore[arg-type]


def _jpeg_settings() -> OutputSettings:
    return dataclasses.replace(load_config().output, format="jpeg")


_CLEAN_PNG = png_plain()
_CLEAN_JPEG = encode_clean(photo(), _jpeg_settings())
_DAMAGEABLE = {"png": _CLEAN_PNG, "jpeg": _CLEAN_JPEG, "webp": webp_plain(), "heif": heif_plain()}
