"""The batch pipeline on the shipped sample batch: the properties a release depends on."""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import piexif
import pytest
from PIL import Image

from deid.batch import BatchSummary, finish_batch
from deid.config import Config, load_config
from deid.ingest import IngestResult, ingest_batch
from deid.ledger import Ledger
from deid.pipeline import process_image, record_image_result
from deid.types import Action, ImageRecord, RegionKind, Status
from deid.workspace import Workspace, open_ledger
from tests.assertions import assert_no_metadata_segments, assert_no_pixel_survives

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


@dataclass
class Run:
    config: Config
    workspace: Workspace
    ledger: Ledger
    ingest: IngestResult
    summary: BatchSummary

    def record(self, original_name: str) -> ImageRecord:
        return next(r for r in self.ledger.images() if r.original_name == original_name)

    def candidate_bytes(self, original_name: str) -> bytes:
        """The staged file, or the held candidate when the image waits for review."""
        record = self.record(original_name)
        assert record.staged_name, f"{original_name} has no candidate: {record.status} {record.reasons}"
        folder = self.workspace.staged_images if record.status is Status.OK else self.workspace.held
        return (folder / record.staged_name).read_bytes()


def run_batch(workspace_root: Path, config: Config) -> Run:
    workspace = Workspace(workspace_root).create()
    ledger = open_ledger(workspace, config)
    ingest = ingest_batch(SAMPLE, workspace, ledger, config)
    for task in ingest.tasks:
        record_image_result(ledger, process_image(task, config, workspace))
    summary = finish_batch(workspace, ledger, config, ingest)
    return Run(config, workspace, ledger, ingest, summary)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_batch(tmp_path_factory.mktemp("workspace"), load_config())


def test_no_staged_file_carries_metadata(run: Run) -> None:
    staged = sorted(run.workspace.staged_images.iterdir())
    assert len(staged) >= 15
    for path in staged:
        assert_no_metadata_segments(path.read_bytes())


def test_gps_photo_is_released_without_any_exif(run: Run) -> None:
    original = (SAMPLE / "images" / "c01_rash_gps.jpg").read_bytes()
    assert piexif.load(original)["GPS"], "the sample must carry GPS for this test to mean anything"
    output = run.candidate_bytes("c01_rash_gps.jpg")
    assert_no_metadata_segments(output)
    assert b"Exif" not in output and b"Pixelphone" not in output and b"Jane" not in output


def test_every_pixel_inside_the_astronaut_face_is_filled(run: Run) -> None:
    record = run.record("c02_astronaut.jpg")
    assert record.action in (Action.REDACT, Action.HOLD), "released redacted, or held with the redaction proposed"
    faces = [r for r in run.ledger.regions_of(record.image_id) if r.kind is RegionKind.FACE]
    assert faces, "the astronaut's face must be found"
    assert record.staged_name
    folder = run.workspace.staged_images if record.status is Status.OK else run.workspace.held
    staged = np.asarray(Image.open(folder / record.staged_name).convert("RGB"))
    margin = run.config.policy.rule_for(RegionKind.FACE).margin_frac
    for face in faces:
        assert_no_pixel_survives(face.box.expand(margin), staged, run.config.policy.fill_rgb)


def test_orientation_is_applied_before_release(run: Run) -> None:
    stored = Image.open(SAMPLE / "images" / "c04_mole_rotated.jpg")
    assert stored.size == (960, 720) and stored.getexif()[0x0112] == 6
    staged = Image.open(io.BytesIO(run.candidate_bytes("c04_mole_rotated.jpg")))
    assert staged.size == (720, 960), "stored sideways with orientation 6; must be released upright"


def test_corrupt_file_is_held_with_a_named_error_and_the_batch_completes(run: Run) -> None:
    record = run.record("c06_truncated.jpg")
    assert record.status is Status.HELD
    assert record.reasons[0].startswith("unreadable_image:")
    assert run.record("c06_rash_ok.jpg").status is Status.OK, "the same contribution's good image goes on"
    assert run.summary.images_in == 28


def test_byte_identical_duplicate_is_excluded(run: Run) -> None:
    record = run.record("c07_same_as_c01.jpg")
    assert record.status is Status.EXCLUDED
    assert "duplicate" in record.reasons[0]


def test_originals_are_kept_privately_and_never_staged(run: Run) -> None:
    originals = {p.read_bytes() for p in run.workspace.originals.rglob("*") if p.is_file()}
    for source in (SAMPLE / "images").iterdir():
        assert source.read_bytes() in originals, f"{source.name} must be kept in originals/"
    staged = {p.read_bytes() for p in run.workspace.staged.rglob("*") if p.is_file()}
    assert not (staged & originals)


def test_manifest_lists_every_staged_file_with_its_checksum(run: Run) -> None:
    manifest = json.loads((run.workspace.staged / "manifest.json").read_text())
    listed = set(manifest["files"])
    on_disk = {
        p.relative_to(run.workspace.staged).as_posix() for p in run.workspace.staged.rglob("*") if p.is_file()
    } - {"manifest.json"}
    assert listed == on_disk
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((run.workspace.staged / name).read_bytes()).hexdigest() == entry["sha256"]


def test_release_names_are_opaque(run: Run) -> None:
    digests = {r.sha256 for r in run.ledger.images()}
    for path in run.workspace.staged_images.iterdir():
        assert re.fullmatch(r"[0-9a-f]{32}\.png", path.name), path.name
        assert not any(path.stem in digest for digest in digests), "never derived from the original's hash"
    text = (run.workspace.staged / "cases.csv").read_text()
    # Field by field: a random hex name may contain "c01" by chance.
    fields = {field for line in text.splitlines() for field in line.split(",")}
    assert not any(re.fullmatch(r"c\d\d(_.*)?", field) for field in fields), "no contribution id or file name"
    assert "gardening" not in text, "no free text in the release"


def test_rerun_is_a_no_op(run: Run) -> None:
    before = {
        p: p.read_bytes()
        for p in run.workspace.root.rglob("*")
        if p.is_file() and p.suffix != ".db" and "ledger.db" not in p.name
    }
    again = ingest_batch(SAMPLE, run.workspace, run.ledger, run.config)
    assert again.tasks == (), "nothing is processed twice"
    finish_batch(run.workspace, run.ledger, run.config, again)
    after = {
        p: p.read_bytes()
        for p in run.workspace.root.rglob("*")
        if p.is_file() and p.suffix != ".db" and "ledger.db" not in p.name
    }
    assert after == before, "a rerun changes no file"
