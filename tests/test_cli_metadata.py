"""``deid inspect``, ``deid strip`` and ``deid verify``: one JSON line per file, per-file errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deid.cli import EXIT_FAILURES, EXIT_OK, main
from deid.verify_bytes import verify_clean
from tests.metadata_samples import SAMPLES, Sample


def _sample(name: str) -> Sample:
    return next(sample for sample in SAMPLES if sample.name == name)


@pytest.fixture
def originals(tmp_path: Path) -> list[Path]:
    files = []
    for name in ("jpeg_exif", "png_itxt_xmp", "heif_exif", "webp_xmp"):
        sample = _sample(name)
        file = tmp_path / "in" / f"{name}{sample.suffix}"
        file.parent.mkdir(exist_ok=True)
        file.write_bytes(sample.build())
        files.append(file)
    return files


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_inspect_prints_one_json_line_per_file(originals: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", *map(str, originals), "--json"]) == EXIT_OK
    lines = _lines(capsys)
    assert [line["file"] for line in lines] == [str(file) for file in originals]
    assert "location" in lines[0]["categories"]  # type: ignore[operator]
    assert {"exif.gps", "exif.thumbnail"} <= {c["kind"] for c in lines[0]["containers"]}  # type: ignore[attr-defined,index]


def test_inspect_reports_a_bad_file_on_its_own_line(
    originals: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.jpg"
    assert main(["inspect", str(missing), str(originals[0]), "--json"]) == EXIT_FAILURES
    error, good = _lines(capsys)
    assert error["file"] == str(missing) and error["error"] == "unreadable_image"
    assert good["file"] == str(originals[0]) and "findings" in good


def test_strip_then_verify(originals: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["strip", *map(str, originals), "--out", str(out), "--json"]) == EXIT_OK
    lines = _lines(capsys)
    outputs = [Path(str(line["output"])) for line in lines]
    assert [path.name for path in outputs] == [f"{file.stem}.png" for file in originals]
    assert all(verify_clean(path.read_bytes()).ok for path in outputs)

    assert main(["verify", *map(str, outputs), "--json"]) == EXIT_OK
    assert all(line["ok"] is True and line["problems"] == [] for line in _lines(capsys))

    assert main(["verify", *map(str, originals), "--json"]) == EXIT_FAILURES
    verdicts = _lines(capsys)
    assert [line["ok"] for line in verdicts] == [False] * len(originals)
    assert all(line["problems"] for line in verdicts)


def test_strip_honours_the_output_format_in_config(
    originals: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "deid.toml"
    config.write_text('[output]\nformat = "jpeg"\njpeg_quality = 85\n')
    assert main(["strip", str(originals[0]), "--out", str(tmp_path / "out"), "--config", str(config), "--json"]) == 0
    (line,) = _lines(capsys)
    assert str(line["output"]).endswith(".jpg")


def test_strip_never_lets_two_inputs_with_one_stem_overwrite_each_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "photo.jpg", tmp_path / "photo.webp"
    first.write_bytes(_sample("jpeg_exif").build())
    second.write_bytes(_sample("webp_exif").build())
    assert main(["strip", str(first), str(second), "--out", str(tmp_path / "out"), "--json"]) == EXIT_FAILURES
    written, refused = _lines(capsys)
    assert written["output"] == str(tmp_path / "out" / "photo.png")
    assert refused["file"] == str(second) and "already written" in str(refused["message"])


def test_strip_holds_a_multi_frame_file_when_configured(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    animated = tmp_path / "anim.gif"
    animated.write_bytes(_sample("gif_animated").build())
    config = tmp_path / "deid.toml"
    config.write_text('[input]\nmulti_frame = "hold"\n')
    code = main(["strip", str(animated), "--out", str(tmp_path / "out"), "--config", str(config), "--json"])
    assert code == EXIT_FAILURES
    (line,) = _lines(capsys)
    assert line["error"] == "unreadable_image" and "frames" in str(line["message"])
    assert not (tmp_path / "out" / "anim.png").exists()


def test_verify_text_output_names_the_problem(originals: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(originals[0])]) == EXIT_FAILURES
    out = capsys.readouterr().out
    assert "NOT CLEAN" in out and "APP1 (Exif)" in out


def test_inspect_text_output_lists_findings(originals: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(originals[0])]) == EXIT_OK
    out = capsys.readouterr().out
    assert "location: GPSLatitude" in out and "device: Make = Acme" in out
