"""Metadata: inspection finds every planted container, stripping leaves nothing, aggregation keeps only the year."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deid.config import Config
from deid.errors import InputError, UnreadableImage, UnsupportedFormat
from deid.io import load_image
from deid.metadata import (
    Finding,
    FindingCategory,
    MetadataReport,
    aggregate_metadata,
    capture_year,
    encode_clean,
    inspect_metadata,
    strip_file,
    strip_image,
)
from deid.verify_bytes import verify_clean
from tests.assertions import assert_no_metadata_segments
from tests.metadata_samples import PERSON, SAMPLES, SERIAL, Sample, jpeg_exif, jpeg_malformed_exif, jpeg_rotated, photo

# deid.io.load_image lets Pillow's "Corrupt EXIF data" UserWarning escape while opening a file whose
# EXIF is malformed (reported to the owner of deid/io.py); the strip itself must still succeed.
PILLOW_CORRUPT_EXIF = pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
MULTI_FRAME = ("png_apng", "webp_animated", "heif_two_images", "tiff_multipage", "gif_animated")


def _param(sample: Sample) -> object:
    marks = [PILLOW_CORRUPT_EXIF] if sample.name == "jpeg_malformed_exif" else []
    return pytest.param(sample, id=sample.name, marks=marks)


def _write(tmp_path: Path, sample: Sample) -> Path:
    file = tmp_path / f"{sample.name}{sample.suffix}"
    file.write_bytes(sample.build())
    return file


# --------------------------------------------------------------------------- encode and strip


def test_encode_clean_round_trips_pixels_and_carries_nothing(config: Config) -> None:
    data = encode_clean(photo(), config.output)
    assert verify_clean(data).ok
    assert_no_metadata_segments(data)
    with Image.open(io.BytesIO(data)) as image:
        assert np.array_equal(np.asarray(image.convert("RGB")), photo())  # PNG is lossless


def test_encode_clean_refuses_non_rgb(config: Config) -> None:
    with pytest.raises(ValueError, match="H x W x 3"):
        encode_clean(np.zeros((4, 4), np.uint8), config.output)


@pytest.mark.parametrize("sample", [_param(s) for s in SAMPLES if s.loadable])
def test_strip_output_of_every_planted_file_verifies(sample: Sample, tmp_path: Path, config: Config) -> None:
    source = _write(tmp_path, sample)
    output = strip_file(source, tmp_path / "out", config.input, config.output)
    assert output == tmp_path / "out" / f"{sample.name}.png"
    data = output.read_bytes()
    report = verify_clean(data)
    assert report.ok, report.problems
    assert_no_metadata_segments(data)
    assert inspect_metadata(output).has_metadata is False
    # Not one planted identifying string survives anywhere in the bytes.
    for secret in (PERSON.encode(), SERIAL.encode(), b"Acme", b"Exif", b"xmpmeta"):
        assert secret not in data


def test_strip_writes_jpeg_when_configured(tmp_path: Path, config: Config) -> None:
    source = tmp_path / "photo.jpg"
    source.write_bytes(jpeg_exif())
    settings = dataclasses.replace(config.output, format="jpeg")
    output = strip_file(source, tmp_path / "out", config.input, settings)
    assert output.suffix == ".jpg"
    assert verify_clean(output.read_bytes()).ok
    assert_no_metadata_segments(output.read_bytes())


def test_strip_applies_orientation_before_encoding(tmp_path: Path, config: Config) -> None:
    """EXIF orientation 6 is gone from the output, so the pixels themselves must stand upright."""
    source = tmp_path / "rotated.jpg"
    source.write_bytes(jpeg_rotated())
    output = strip_file(source, tmp_path / "out", config.input, config.output)
    with Image.open(output) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    upright = np.rot90(photo(), k=-1).astype(np.int16)  # orientation 6: turn 90 degrees clockwise
    assert pixels.shape == upright.shape
    assert np.abs(pixels - upright).mean() < 8  # JPEG noise only; a wrong turn differs by far more


@pytest.mark.parametrize("name", MULTI_FRAME)
def test_multi_frame_files_keep_the_first_frame_and_say_so(name: str, tmp_path: Path, config: Config) -> None:
    sample = next(s for s in SAMPLES if s.name == name)
    result = strip_image(_write(tmp_path, sample), tmp_path / "out", config.input, config.output)
    assert any("kept frame 1 of 2" in note for note in result.notes)
    assert verify_clean(result.output.read_bytes()).ok


@pytest.mark.parametrize("name", MULTI_FRAME)
def test_multi_frame_files_are_held_when_configured(name: str, tmp_path: Path, config: Config) -> None:
    sample = next(s for s in SAMPLES if s.name == name)
    hold = dataclasses.replace(config.input, multi_frame="hold")
    with pytest.raises(UnreadableImage, match="2 frames"):
        strip_file(_write(tmp_path, sample), tmp_path / "out", hold, config.output)
    assert not (tmp_path / "out").exists()


def test_strip_never_overwrites_the_original(tmp_path: Path, config: Config) -> None:
    source = tmp_path / "photo.png"
    source.write_bytes(next(s for s in SAMPLES if s.name == "png_text").build())
    before = source.read_bytes()
    with pytest.raises(InputError, match="overwrite the original"):
        strip_file(source, tmp_path, config.input, config.output)
    assert source.read_bytes() == before


@PILLOW_CORRUPT_EXIF
def test_strip_survives_malformed_exif(tmp_path: Path, config: Config) -> None:
    source = tmp_path / "bad_exif.jpg"
    source.write_bytes(jpeg_malformed_exif())
    assert verify_clean(strip_file(source, tmp_path / "out", config.input, config.output).read_bytes()).ok


# --------------------------------------------------------------------------- inspect


@pytest.mark.parametrize("sample", [pytest.param(s, id=s.name) for s in SAMPLES if s.container or s.category])
def test_inspect_finds_every_planted_container(sample: Sample) -> None:
    report = inspect_metadata(f"x{sample.suffix}", data=sample.build())
    kinds = {container.kind for container in report.containers}
    if sample.container:
        assert sample.container in kinds, sorted(kinds)
    if sample.category:
        assert FindingCategory(sample.category) in report.categories, report.findings


def test_inspect_reports_values_by_category() -> None:
    report = inspect_metadata("x.jpg", data=jpeg_exif())
    by_tag = {finding.tag: finding for finding in report.findings}
    assert by_tag["Make"].category is FindingCategory.DEVICE and by_tag["Make"].value == "Acme"
    assert by_tag["BodySerialNumber"].value == SERIAL
    assert by_tag["CameraOwnerName"].category is FindingCategory.PERSON
    assert by_tag["Artist"].value == PERSON
    assert by_tag["GPSLatitude"].category is FindingCategory.LOCATION
    assert by_tag["DateTimeOriginal"].category is FindingCategory.TIME
    assert by_tag["Software"].category is FindingCategory.SOFTWARE
    assert by_tag["ThumbnailImage"].category is FindingCategory.EMBEDDED_IMAGE
    assert json.loads(json.dumps(report.to_json()))["format"] == "JPEG"


def test_inspect_reports_malformed_exif_and_goes_on() -> None:
    """piexif raises on this block; the report says so and still lists the XMP after it."""
    report = inspect_metadata("bad.jpg", data=jpeg_malformed_exif())
    assert any(error.startswith("exif:") for error in report.errors)
    assert "xmp" in {container.kind for container in report.containers}
    assert any(finding.tag == "dc:creator" for finding in report.findings)


def test_inspect_clean_output_finds_nothing(config: Config) -> None:
    report = inspect_metadata("clean.png", data=encode_clean(photo(), config.output))
    assert (report.containers, report.findings, report.errors, report.frames) == ((), (), (), 1)


@pytest.mark.parametrize(
    ("content", "error"),
    [
        pytest.param(b"", UnreadableImage, id="empty"),
        pytest.param(b"%PDF-1.7 not an image", UnsupportedFormat, id="pdf"),
    ],
)
def test_inspect_refuses_what_is_not_an_image(content: bytes, error: type[Exception], tmp_path: Path) -> None:
    file = tmp_path / "file.jpg"
    file.write_bytes(content)
    with pytest.raises(error, match=r"file\.jpg"):
        inspect_metadata(file)


def test_inspect_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableImage, match="cannot read"):
        inspect_metadata(tmp_path / "missing.jpg")


# --------------------------------------------------------------------------- aggregation


def test_aggregate_keeps_only_the_year_and_removed_categories() -> None:
    report = inspect_metadata("x.jpg", data=jpeg_exif())
    kept = aggregate_metadata(report)
    assert set(kept) == {"capture_year", "removed"}
    assert kept["capture_year"] == 2021
    text = json.dumps(kept)
    for finding in report.findings:  # no value found in the original reaches the ledger
        if len(finding.value) >= 4:
            assert finding.value not in text
    assert "06" not in text and "Acme" not in text and PERSON not in text


@pytest.mark.parametrize(
    ("value", "year"),
    [
        pytest.param("2019:07:04 10:12:00", 2019, id="exif"),
        pytest.param("2019-07-04T10:12:00+02:00", 2019, id="iso"),
        pytest.param("20190704", 2019, id="iptc"),
        pytest.param("1970:01:01 00:00:00", None, id="clock-reset"),
        pytest.param("0000:00:00 00:00:00", None, id="zero"),
        pytest.param("    :  :     :  :  ", None, id="blank"),
        pytest.param("9999:01:01 00:00:00", None, id="future"),
    ],
)
def test_capture_year_is_plausible_or_none(value: str, year: int | None) -> None:
    finding = Finding(FindingCategory.TIME, "DateTimeOriginal", "exif.exif", value)
    assert capture_year(MetadataReport("a.jpg", "JPEG", 1, 1, (), (finding,))) == year


def test_capture_year_prefers_the_original_date_over_the_file_change_date() -> None:
    findings = (
        Finding(FindingCategory.TIME, "DateTime", "exif.ifd0", "2023:01:01 00:00:00"),
        Finding(FindingCategory.TIME, "DateTimeOriginal", "exif.exif", "2019:07:04 10:12:00"),
    )
    assert capture_year(MetadataReport("a.jpg", "JPEG", 1, 1, (), findings)) == 2019


# --------------------------------------------------------------------------- real camera files


def _devdata_files(devdata: Path) -> list[Path]:
    return sorted(p for p in (devdata / "metadata").iterdir() if p.suffix.lower() != ".json")


@pytest.fixture(scope="module")
def stripped_devdata(
    devdata: Path, config: Config, tmp_path_factory: pytest.TempPathFactory
) -> list[tuple[Path, Path]]:
    """Every devdata metadata file stripped once (into its own folder: two files share a stem)."""
    out = tmp_path_factory.mktemp("stripped")
    return [(file, strip_file(file, out / file.name, config.input, config.output)) for file in _devdata_files(devdata)]


def test_devdata_inspection_matches_the_exiftool_labels(devdata: Path) -> None:
    """What exiftool found in each original (labels_metadata.json), inspect_metadata finds too.

    MakerNotes and vendor APPn blocks (FLIR, GoPro) are reported whole as
    opaque device blocks, not parsed: a location or owner name exiftool
    reads inside one counts as found when the opaque block is reported.
    """
    labels = json.loads((devdata / "metadata" / "labels_metadata.json").read_text())
    misses = []
    for name, label in labels.items():
        report = inspect_metadata(devdata / "metadata" / name)
        kinds = {container.kind for container in report.containers}
        categories = {str(category) for category in report.categories}
        opaque = "exif.makernote" in kinds or any(kind.startswith("jpeg.APP") for kind in kinds)
        expected = {
            "location": label["gps"],
            "device": bool(label["make"] or label["model"] or label["serial_numbers"]),
            "embedded_image": bool(label["thumbnails"]) and not set(label["thumbnails"]) <= {"PreviewImage"},
            "person": bool(label["owner_names"]),
        }
        for category, present in expected.items():
            if present and category not in categories and not opaque:
                misses.append(f"{name}: {category}")
        if label["xmp"] and not kinds & {"xmp", "png.iTXt", "heif.mime"}:
            misses.append(f"{name}: xmp")
        if label["iptc"] and "iptc" not in kinds:
            misses.append(f"{name}: iptc")
        if label["icc_profile"] and not any(kind.startswith("icc") or kind.endswith("ICCP") for kind in kinds):
            misses.append(f"{name}: icc")
        if label["makernotes"] and "exif.makernote" not in kinds:
            misses.append(f"{name}: makernote")
        if label["png_text_chunks"] and not kinds & {"png.tEXt", "png.zTXt", "png.iTXt"}:
            misses.append(f"{name}: png text")
        assert aggregate_metadata(report)["capture_year"] in (None, *range(1990, 2100))
    assert misses == []


def test_devdata_stripped_outputs_verify(stripped_devdata: list[tuple[Path, Path]]) -> None:
    failures = {}
    for source, output in stripped_devdata:
        report = verify_clean(output.read_bytes(), decode=False)  # structure only: decoding is tested elsewhere
        if not report.ok:
            failures[source.name] = report.problems
    assert failures == {}
    assert len(stripped_devdata) >= 30


def test_devdata_stripped_outputs_keep_the_picture(stripped_devdata: list[tuple[Path, Path]], config: Config) -> None:
    """Stripping changes no pixel: the PNG holds exactly what the loader decoded (upright, sRGB)."""
    small = [(source, output) for source, output in stripped_devdata if source.stat().st_size < 200_000]
    assert len(small) >= 6
    for source, output in small[:8]:
        with Image.open(output) as image:
            written = np.asarray(image.convert("RGB"))
        assert np.array_equal(written, load_image(source, config.input).pixels), source.name


# What exiftool may still report about a stripped file: nothing but the image's own structure.
#  - SourceFile and ExifTool:ExifToolVersion describe the reader, not the file.
#  - System:* comes from the file system (name, folder, size, dates, permissions), not from the bytes.
#  - File:FileType/FileTypeExtension/MIMEType name the format; for JPEG, File:ImageWidth ... YCbCrSubSampling
#    are read from the SOF frame header every JPEG needs to be decoded.
#  - PNG:* here are the seven IHDR fields every PNG needs; JFIF:* the four fields of the JFIF APP0 header
#    (version and pixel density, no thumbnail), which the verifier allows and checks.
#  - Composite:ImageSize and Megapixels are computed by exiftool from width and height.
# Anything else (a Warning included) means the file carries something more, and fails.
EXIFTOOL_STRUCTURE_TAGS = frozenset(
    {
        "SourceFile",
        "ExifTool:ExifToolVersion",
        *(f"System:{tag}" for tag in ("FileName", "Directory", "FileSize", "FileModifyDate", "FileAccessDate",
                                      "FileInodeChangeDate", "FilePermissions")),
        *(f"File:{tag}" for tag in ("FileType", "FileTypeExtension", "MIMEType", "ImageWidth", "ImageHeight",
                                    "EncodingProcess", "BitsPerSample", "ColorComponents", "YCbCrSubSampling")),
        *(f"PNG:{tag}" for tag in ("ImageWidth", "ImageHeight", "BitDepth", "ColorType", "Compression", "Filter",
                                   "Interlace")),
        *(f"JFIF:{tag}" for tag in ("JFIFVersion", "ResolutionUnit", "XResolution", "YResolution")),
        "Composite:ImageSize",
        "Composite:Megapixels",
    }
)  # fmt: skip


def _exiftool(files: list[Path]) -> list[dict[str, object]]:
    if shutil.which("exiftool") is None:
        if os.environ.get("CI"):
            pytest.fail("exiftool not installed: `make test` installs Debian's libimage-exiftool-perl")
        pytest.skip("exiftool not installed (Debian: libimage-exiftool-perl; `make apt` installs it)")
    command = ["exiftool", "-j", "-a", "-G1", *map(str, files)]
    done = subprocess.run(command, capture_output=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    result: list[dict[str, object]] = json.loads(done.stdout)
    return result


def test_exiftool_finds_nothing_but_structure_in_any_stripped_devdata_file(
    stripped_devdata: list[tuple[Path, Path]], devdata: Path
) -> None:
    """exiftool, an independent reader, sees no metadata tag in any output, in either output format."""
    outputs = [output for _, output in stripped_devdata]
    extra = {str(entry["SourceFile"]): sorted(set(entry) - EXIFTOOL_STRUCTURE_TAGS) for entry in _exiftool(outputs)}
    assert {name: tags for name, tags in extra.items() if tags} == {}
    # The reader is not blind: on the originals it reports what the labels say is there.
    originals = _exiftool([source for source, _ in stripped_devdata[:3]])
    assert all(set(entry) - EXIFTOOL_STRUCTURE_TAGS for entry in originals)


def test_exiftool_finds_nothing_in_stripped_jpeg_output(tmp_path: Path, config: Config, devdata: Path) -> None:
    settings = dataclasses.replace(config.output, format="jpeg")
    sources = [devdata / "metadata" / name for name in ("exiftool_GoPro.jpg", "mei_Nikon_D1X.webp", "mei_Issue_62.png")]
    outputs = [strip_file(source, tmp_path, config.input, settings) for source in sources]
    extra = {str(entry["SourceFile"]): sorted(set(entry) - EXIFTOOL_STRUCTURE_TAGS) for entry in _exiftool(outputs)}
    assert {name: tags for name, tags in extra.items() if tags} == {}
