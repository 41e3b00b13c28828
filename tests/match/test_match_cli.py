"""``deid index add``, ``deid index stats`` and ``deid match`` end to end, in process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deid.cli import EXIT_FAILURES, EXIT_OK, main
from deid.types import RGBImage


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


@pytest.fixture
def public_dir(tmp_path: Path, photos: dict[str, RGBImage]) -> Path:
    folder = tmp_path / "public"
    (folder / "atlas").mkdir(parents=True)
    for name in ("astronaut", "coffee", "rocket"):
        Image.fromarray(photos[name]).save(folder / "atlas" / f"{name}.jpg", quality=92)
    (folder / "notes.txt").write_text("not an image; folders skip it")
    return folder


def test_index_add_stats_and_match(
    tmp_path: Path, public_dir: Path, photos: dict[str, RGBImage], capsys: pytest.CaptureFixture[str]
) -> None:
    index = tmp_path / "index"
    assert main(["index", "add", "--index", str(index), str(public_dir), "--json"]) == EXIT_OK
    added = lines(capsys)
    assert sorted(Path(str(row["file"])).name for row in added) == ["astronaut.jpg", "coffee.jpg", "rocket.jpg"]
    assert {row["status"] for row in added} == {"added"}

    # Rerunning is a no-op for what is already indexed.
    assert main(["index", "add", "--index", str(index), str(public_dir / "atlas" / "coffee.jpg"), "--json"]) == EXIT_OK
    assert lines(capsys) == [{"file": str(public_dir / "atlas" / "coffee.jpg"), "status": "present"}]

    assert main(["index", "stats", "--index", str(index), "--json"]) == EXIT_OK
    (stats,) = lines(capsys)
    assert stats["references"] == 3 and int(str(stats["bytes"])) > 0 and float(str(stats["bytes_per_reference"])) > 0

    queries = tmp_path / "queries"
    queries.mkdir()
    copy = Image.fromarray(photos["coffee"]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((300, 200))
    copy.save(queries / "mirrored-coffee.jpg", quality=60)
    Image.fromarray(photos["chelsea"]).save(queries / "cat.png")
    (queries / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    argv = [
        "match",
        "--index",
        str(index),
        *(str(queries / n) for n in ("mirrored-coffee.jpg", "cat.png", "broken.jpg")),
        "--json",
    ]
    assert main(argv) == EXIT_FAILURES
    copy_line, cat_line, broken_line = lines(capsys)
    assert copy_line["file"].endswith("mirrored-coffee.jpg")  # type: ignore[union-attr]
    (best, *_) = copy_line["matches"]  # type: ignore[misc]
    assert best["reference"] == str(public_dir / "atlas" / "coffee.jpg")
    assert best["verdict"] == "public_copy" and best["verified"] is True
    assert {"reference", "distance", "method", "verified", "verdict"} <= set(best)
    assert cat_line == {"file": str(queries / "cat.png"), "verdict": "none", "matches": []}
    assert broken_line["file"] == str(queries / "broken.jpg") and broken_line["error"] in {
        "unreadable_image",
        "unsupported_format",
    }


def test_match_without_index_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8)).save(image)
    assert main(["match", "--index", str(tmp_path / "nothing"), str(image), "--json"]) == 2
    assert json.loads(capsys.readouterr().err)["error"] == "ledger_error"


def test_index_add_reports_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    assert main(["index", "add", "--index", str(tmp_path / "index"), str(bad), "--json"]) == EXIT_FAILURES
    (row,) = lines(capsys)
    assert row["status"] == "error" and row["file"] == str(bad)
