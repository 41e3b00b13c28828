"""Bounded fuzzing of everything that parses untrusted bytes: the image loader, the metadata
reader and the cases.csv reader.

Property: each either returns a well-formed result or raises a deid
:class:`~deid.errors.InputError` naming the file; never another exception, so
one hostile file can never crash a batch. Seeds are real encodings of a
generated photo in every allowed format; mutations flip, cut, splice and
repeat bytes. Crashes found here become named cases in ``tests/hostile.py``.
"""

from __future__ import annotations

import io
import tracemalloc
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from deid.cases import read_cases
from deid.config import load_config
from deid.errors import InputError, UnsupportedFormat
from deid.io import CONTAINERS, load_image
from deid.metadata import inspect_metadata
from tests.hostile import (
    bigtiff,
    exif_bad_offset,
    exif_huge_count,
    exif_huge_long_count,
    exif_loop,
    fax_tiff,
    skin_photo,
)

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
INPUT = load_config().input


def _seeds() -> dict[str, bytes]:
    image = Image.fromarray(skin_photo(30, (48, 32)))
    seeds = {".jpg": exif_loop(), ".btf": bigtiff(), ".g3.tif": fax_tiff(damaged=False)}
    for suffix, fmt in ((".png", "PNG"), (".webp", "WEBP"), (".tif", "TIFF"), (".gif", "GIF"), (".avif", "AVIF")):
        buffer = io.BytesIO()
        image.save(buffer, fmt)
        seeds[suffix] = buffer.getvalue()
    return seeds


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A seed file damaged by a few random edits."""
    suffix = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[suffix])
    for _ in range(draw(st.integers(1, 6))):
        edit = draw(st.sampled_from(["flip", "cut", "insert", "repeat", "zero"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if edit == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif edit == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 64))] * draw(st.integers(1, 8))
        else:
            data[at : at + 4] = b"\xff\xff\xff\xff"
    return suffix, bytes(data)


@FUZZ
@given(mutated())
def test_loader_returns_rgb_or_raises_input_error(tmp_path: Path, case: tuple[str, bytes]) -> None:
    suffix, data = case
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # decoder warnings are notes, not the property under test
        try:
            loaded = load_image(path, INPUT)
        except InputError as error:
            assert str(path) in str(error)
            return
    assert loaded.pixels.dtype == np.uint8 and loaded.pixels.ndim == 3 and loaded.pixels.shape[2] == 3
    assert loaded.pixels.shape[0] >= 1 and loaded.pixels.shape[1] >= 1


@FUZZ
@given(mutated())
def test_metadata_reader_never_crashes(tmp_path: Path, case: tuple[str, bytes]) -> None:
    suffix, data = case
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            report = inspect_metadata(path, data=data)
        except InputError:
            return
    assert isinstance(report.to_json(), dict)


ALL_FORMATS = replace(INPUT, allowed_formats=tuple(CONTAINERS))


@FUZZ
@given(mutated())
def test_inspect_and_load_agree_on_what_a_file_is(tmp_path: Path, case: tuple[str, bytes]) -> None:
    """One reader decides: whatever the loader decodes, inspect reads as the same container, and
    whatever inspect refuses as not an image, the loader refuses too (issue 17: BigTIFF)."""
    suffix, data = case
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            report = inspect_metadata(path, data=data)
        except UnsupportedFormat:
            with pytest.raises(UnsupportedFormat):
                load_image(path, ALL_FORMATS, data=data)
            return
        except InputError:
            return
        try:
            loaded = load_image(path, ALL_FORMATS, data=data)
        except InputError:
            return
    assert CONTAINERS[loaded.format] == CONTAINERS.get(report.format, report.format), (report.format, loaded.format)


CSV_ALPHABET = st.sampled_from([*'abc,"\n\r;=+-@ 0123456789:TZ.\t\\/', "é", "😀", "\x00", "..", "images/"])


@FUZZ
@given(st.lists(CSV_ALPHABET, max_size=400).map("".join), st.booleans())
def test_cases_reader_returns_cases_or_raises_invalid_row(tmp_path: Path, body: str, with_header: bool) -> None:
    header = "contribution_id,submitted_at,age,image_1,shot_type_1\n" if with_header else ""
    path = tmp_path / "cases.csv"
    path.write_bytes((header + body).encode("utf-8", "surrogatepass"))
    try:
        cases, problems = read_cases(path)
    except InputError as error:
        assert str(path) in str(error)
        return
    for case in cases:
        assert case.contribution_id and case.images
    for problem in problems:
        assert str(path) in problem.where


@pytest.mark.parametrize(
    "raw", [b"", b"\xff\xfe\x00", b"\xef\xbb\xbf", b"a,b\n\x00\x00"], ids=["empty", "utf16-bom", "utf8-bom-only", "nul"]
)
def test_degenerate_cases_files_are_input_errors(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "cases.csv"
    path.write_bytes(raw)
    with pytest.raises(InputError):
        read_cases(path)


@pytest.mark.parametrize(
    "builder", [exif_huge_long_count, exif_huge_count, exif_loop, exif_bad_offset], ids=lambda b: b.__name__
)
def test_hostile_exif_is_read_in_bounded_memory(tmp_path: Path, builder) -> None:  # type: ignore[no-untyped-def]
    """Regression (found by the fuzzer): declared EXIF counts must never size an allocation."""
    data = builder()
    path = tmp_path / "hostile.jpg"
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = inspect_metadata(path, data=data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024, f"{peak / 1e6:.0f} MB to inspect a {len(data)}-byte file"
    assert isinstance(report.to_json(), dict)
