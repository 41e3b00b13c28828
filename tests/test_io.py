"""The loader hands the detectors the upright, complete picture, whatever the file is called.

Issue 17: a TIFF with an EXIF orientation came out turned twice (Pillow 13's
TIFF decoder already transposes); a WebP named ``.jpg`` was refused; AVIF was
refused; a fax TIFF whose strip libtiff could not decode was released mostly
white; ``deid inspect`` refused BigTIFFs that ``deid strip`` released.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from deid.config import ConfigError, InputSettings, load_config
from deid.errors import UnreadableImage, UnsupportedFormat
from deid.io import HAS_LIBTIFF_MESSAGES, content_format, load_image
from deid.metadata import FindingCategory, inspect_metadata
from tests.hostile import asymmetric_picture, bigtiff, fax_tiff, oriented, skin_photo

INPUT = load_config().input
LOSSY_TOLERANCE = 12.0  # mean absolute difference per channel; a wrong turn or flip gives > 60 on this picture


def _encode(pixels: np.ndarray, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(
    ("fmt", "suffix"),
    [
        pytest.param("TIFF", ".tif", id="tiff"),
        pytest.param("JPEG", ".jpg", id="jpeg"),
        pytest.param("WEBP", ".webp", id="webp"),
        pytest.param("PNG", ".png", id="png"),
        pytest.param("HEIF", ".heic", id="heif"),
        pytest.param("AVIF", ".avif", id="avif"),
    ],
)
def test_every_exif_orientation_comes_out_upright_once(tmp_path: Path, fmt: str, suffix: str, orientation: int) -> None:
    """Stored turned as a camera would, tagged with the orientation: loaded, it equals the upright picture."""
    upright = asymmetric_picture()
    path = _write(tmp_path, f"o{orientation}{suffix}", oriented(fmt, orientation, upright))
    loaded = load_image(path, INPUT)
    assert loaded.pixels.shape == upright.shape, f"orientation {orientation}: turned sideways"
    difference = np.abs(loaded.pixels.astype(np.float64) - upright).mean()
    assert difference < LOSSY_TOLERANCE, f"{fmt} orientation {orientation}: not upright (mean diff {difference:.1f})"
    assert loaded.orientation == orientation, "the orientation the file declared is reported"


# --------------------------------------------------------------------------- formats by content


@pytest.mark.parametrize(
    ("name", "fmt", "note"),
    [
        pytest.param("photo.jpg", "WEBP", "input.name_mismatch: named .jpg, content WEBP", id="webp-named-jpg"),
        pytest.param("photo.jpeg", "PNG", "input.name_mismatch: named .jpeg, content PNG", id="png-named-jpeg"),
        pytest.param("photo.heic", "AVIF", "input.name_mismatch: named .heic, content AVIF", id="avif-named-heic"),
        pytest.param("photo.jpg", "AVIF", "input.name_mismatch: named .jpg, content AVIF", id="avif-named-jpg"),
        pytest.param("photo.png", "TIFF", "input.name_mismatch: named .png, content TIFF", id="tiff-named-png"),
        pytest.param("photo.avif", "AVIF", None, id="avif"),
        pytest.param("photo.webp", "WEBP", None, id="webp"),
        pytest.param("photo", "PNG", None, id="no-extension"),
    ],
)
def test_an_allowed_format_under_any_name_is_loaded_with_a_note_when_the_name_lies(
    tmp_path: Path, name: str, fmt: str, note: str | None
) -> None:
    picture = skin_photo(40, (120, 80))
    path = _write(tmp_path, name, _encode(picture, fmt))
    loaded = load_image(path, INPUT)
    assert loaded.format == fmt
    assert np.abs(loaded.pixels.astype(np.float64) - picture).mean() < LOSSY_TOLERANCE
    mismatches = [n for n in loaded.notes if n.startswith("input.name_mismatch")]
    assert mismatches == ([note] if note else [])


def test_avif_support_is_present_and_allowed_by_default() -> None:
    assert features.check("avif"), "this Pillow has no AVIF decoder; deid's default allows AVIF"
    assert "AVIF" in INPUT.allowed_formats


@pytest.mark.parametrize(
    ("name", "data"),
    [
        pytest.param("drawing.png", b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', id="svg"),
        pytest.param("scan.jpg", b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n", id="pdf"),
        pytest.param("notes.jpg", b"patient notes, not a picture\n", id="text"),
        pytest.param("clip.heic", b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41" + b"\x00" * 32, id="mp4"),
        pytest.param("icon.jpg", _encode(skin_photo(41, (16, 16)), "BMP"), id="bmp"),
    ],
)
def test_what_is_not_an_allowed_image_is_still_refused_under_an_image_name(
    tmp_path: Path, name: str, data: bytes
) -> None:
    path = _write(tmp_path, name, data)
    with pytest.raises(UnsupportedFormat, match=name.replace(".", r"\.")):
        load_image(path, INPUT)
    with pytest.raises(UnsupportedFormat, match=name.replace(".", r"\.")):
        inspect_metadata(path)


def test_a_format_off_the_allow_list_is_refused_by_content(tmp_path: Path) -> None:
    no_avif = InputSettings(tuple(f for f in INPUT.allowed_formats if f != "AVIF"), 10**8, 10**8, "first")
    path = _write(tmp_path, "photo.jpg", _encode(skin_photo(42, (64, 48)), "AVIF"))
    with pytest.raises(UnsupportedFormat, match="format AVIF is not allowed"):
        load_image(path, no_avif)


def test_an_unknown_allowed_format_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"input\.allowed_formats"):
        InputSettings(("JPEG", "JPG"), 10, 10, "first")


# --------------------------------------------------------------------------- partial decodes


def test_a_tiff_with_an_undecodable_strip_is_unreadable_and_named(tmp_path: Path) -> None:
    assert HAS_LIBTIFF_MESSAGES, "this Pillow build hides libtiff's messages"
    path = _write(tmp_path, "scan.tif", fax_tiff(damaged=True))
    with pytest.raises(UnreadableImage, match=r"scan\.tif: partial decode.*Bad code word"):
        load_image(path, INPUT)


def test_the_same_tiff_undamaged_loads_in_full(tmp_path: Path) -> None:
    loaded = load_image(_write(tmp_path, "scan.tif", fax_tiff(damaged=False)), INPUT)
    yy, xx = np.mgrid[0:256, 0:256]
    board = np.where(((xx // 16 + yy // 16) % 2 == 0)[..., None], 255, 0)
    assert np.array_equal(loaded.pixels, np.broadcast_to(board, loaded.pixels.shape))


def test_libtiff_messages_are_kept_to_the_thread_that_decodes(tmp_path: Path) -> None:
    """A damaged TIFF decoded in one thread never makes another thread's good image unreadable."""
    bad = _write(tmp_path, "bad.tif", fax_tiff(damaged=True))
    good = _write(tmp_path, "good.tif", fax_tiff(damaged=False))
    failures: list[str] = []

    def load_good() -> None:
        for _ in range(20):
            try:
                load_image(good, INPUT)
            except UnreadableImage as error:
                failures.append(str(error))

    worker = threading.Thread(target=load_good)
    worker.start()
    for _ in range(20):
        with pytest.raises(UnreadableImage):
            load_image(bad, INPUT)
    worker.join()
    assert not failures


# --------------------------------------------------------------------------- one reader for inspect and load


def test_inspect_and_load_agree_on_a_bigtiff(tmp_path: Path) -> None:
    path = _write(tmp_path, "scan.tif", bigtiff(make="ScannerCo"))
    assert path.read_bytes()[:4] == b"II+\x00", "the fixture must really be a BigTIFF"
    report = inspect_metadata(path)
    loaded = load_image(path, INPUT)
    assert report.format == loaded.format == content_format(path.read_bytes(), path) == "TIFF"
    assert loaded.pixels.shape == (120, 160, 3)
    assert any(f.category is FindingCategory.DEVICE and f.value == "ScannerCo" for f in report.findings), (
        "the BigTIFF's IFD0 is read, so its camera make is reported"
    )


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        pytest.param("JPEG", {}, id="jpeg"),
        pytest.param("PNG", {}, id="png"),
        pytest.param("WEBP", {}, id="webp"),
        pytest.param("TIFF", {}, id="tiff"),
        pytest.param("TIFF", {"big_tiff": True}, id="bigtiff"),
        pytest.param("HEIF", {}, id="heif"),
        pytest.param("AVIF", {}, id="avif"),
        pytest.param("GIF", {}, id="gif"),
    ],
)
def test_inspect_and_load_name_the_same_format(tmp_path: Path, fmt: str, options: dict[str, object]) -> None:
    path = _write(tmp_path, "photo.bin", _encode(skin_photo(43, (64, 48)), fmt, **options))
    assert inspect_metadata(path).format == load_image(path, INPUT).format == fmt
