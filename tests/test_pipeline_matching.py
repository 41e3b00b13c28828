"""Matching inside the pipeline: public copies excluded with evidence, near-duplicates collapsed."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from PIL import Image

from deid.batch import finish_batch
from deid.cli import main
from deid.config import load_config
from deid.ingest import ingest_batch
from deid.pipeline import process_image, record_image_result
from deid.types import Status
from deid.workspace import Workspace, open_ledger
from tests.hostile import HEADER

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def _run(batch: Path, workspace_root: Path, config_text: str):  # type: ignore[no-untyped-def]
    config_path = workspace_root.parent / f"{workspace_root.name}.toml"
    config_path.write_text(config_text)
    config = load_config(config_path)
    workspace = Workspace(workspace_root).create()
    ledger = open_ledger(workspace, config)
    ingest = ingest_batch(batch, workspace, ledger, config)
    for task in ingest.tasks:
        record_image_result(ledger, process_image(task, config, workspace))
    return workspace, ledger, finish_batch(workspace, ledger, config, ingest)


def _batch(root: Path, images: dict[str, bytes]) -> Path:
    (root / "images").mkdir(parents=True)
    with open(root / "cases.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for number, (name, payload) in enumerate(images.items(), start=1):
            (root / "images" / name).write_bytes(payload)
            writer.writerow(
                [
                    f"m{number}",
                    "2025-08-01T00:00:00Z",
                    "44",
                    "male",
                    "FST2",
                    "white",
                    "arm",
                    "",
                    "",
                    "",
                    "",
                    "",
                    name,
                    "CLOSE_UP",
                    "",
                    "",
                    "",
                    "",
                ]
            )
    return root


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def test_public_copy_is_excluded_with_its_evidence(tmp_path: Path) -> None:
    index = tmp_path / "public-index"
    assert main(["index", "add", "--index", str(index), str(SAMPLE / "public")]) == 0
    batch = _batch(
        tmp_path / "batch",
        {
            "coffee.jpg": (SAMPLE / "images" / "c19_coffee.jpg").read_bytes(),
            "rash.jpg": (SAMPLE / "images" / "c14_view1.jpg").read_bytes(),
        },
    )
    workspace, ledger, summary = _run(
        batch, tmp_path / "ws", f'[match]\nindex_dir = "{index}"\n[demographics]\nk = 1\n'
    )
    coffee = next(r for r in ledger.images() if r.original_name == "coffee.jpg")
    assert coffee.status is Status.EXCLUDED
    assert coffee.reasons[0].startswith("match.public_copy:") and "coffee.jpg" in coffee.reasons[0]
    evidence = ledger.image_details(coffee.image_id).matches
    assert evidence[0].verdict == "public_copy" and evidence[0].match.reference.endswith("coffee.jpg")
    assert (workspace.previews / f"{coffee.image_id}_match.png").exists(), "both images side by side for the record"
    assert not coffee.staged_name, "nothing of a public copy is staged"
    rash = next(r for r in ledger.images() if r.original_name == "rash.jpg")
    assert rash.status is Status.OK, rash.reasons
    assert [copy.original_name for copy in summary.public_copies] == ["coffee.jpg"]
    assert "public copy excluded: coffee.jpg" in summary.to_text()


def test_near_duplicate_contributions_are_collapsed(tmp_path: Path) -> None:
    photo = Image.open(SAMPLE / "images" / "c14_view1.jpg")
    resized = photo.resize((672, 504), Image.LANCZOS)  # a 70% copy, re-encoded at quality 55
    images = {
        "first.jpg": (SAMPLE / "images" / "c14_view1.jpg").read_bytes(),
        "again.jpg": _jpeg(resized, 55),
        "other.jpg": (SAMPLE / "images" / "c15_view1.jpg").read_bytes(),
    }
    batch = _batch(tmp_path / "batch", images)
    workspace, ledger, _ = _run(batch, tmp_path / "ws", "[demographics]\nk = 1\n")
    by_name = {r.original_name: r for r in ledger.images()}
    assert by_name["first.jpg"].status is Status.OK
    assert by_name["again.jpg"].status is Status.EXCLUDED
    assert (
        by_name["again.jpg"]
        .reasons[0]
        .startswith(f"duplicate: near-identical to image {by_name['first.jpg'].image_id}")
    )
    assert not (workspace.staged_images / f"{by_name['again.jpg'].image_id}.png").exists()
    assert by_name["other.jpg"].status is Status.OK, "a different photo of similar skin is not a duplicate"
