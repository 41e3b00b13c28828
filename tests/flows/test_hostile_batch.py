"""One batch holding every kind of hostile and broken input, run through the real flow.

The good images are released, every bad item is held with its named reason
and its original kept, the run ends green, and no staged or held candidate
carries metadata or a second frame.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deid.config import load_config
from deid.ledger import Ledger, ledger_url
from deid.types import Status
from deid.verify_bytes import verify_clean
from tests.hostile import OK, HostileBatch, write_hostile_batch

CONFIG = Path(__file__).with_name("hostile.toml")
INPUT_ERRORS = ("unreadable_image", "unsupported_format", "invalid_case_row", "internal_error", "detector_error")


@pytest.fixture(scope="module")
def outcome(
    prefect_harness: None, tmp_path_factory: pytest.TempPathFactory
) -> tuple[HostileBatch, Ledger, Path, object]:
    from flows.deidentify import RunParameters, deidentify

    batch = write_hostile_batch(tmp_path_factory.mktemp("in") / "hostile")
    workspace = tmp_path_factory.mktemp("workspace")
    state = deidentify(
        RunParameters(input_dir=str(batch.root), workspace=str(workspace), config_path=str(CONFIG)), return_state=True
    )
    assert state.is_completed(), f"the run must end green: {state}"
    ledger = Ledger(ledger_url(workspace, load_config(CONFIG).ledger.url))
    return batch, ledger, workspace, state.result()


def _record(ledger: Ledger, name: str):  # type: ignore[no-untyped-def]
    found = [r for r in ledger.images() if r.original_name == name]
    assert len(found) == 1, f"{name} should be in the ledger once, found {len(found)}"
    return found[0]


def test_good_images_are_released(outcome) -> None:  # type: ignore[no-untyped-def]
    _, ledger, _, _ = outcome
    for name in ("good_1.jpg", "good_2.png"):
        record = _record(ledger, name)
        assert record.status is Status.OK, f"{name}: {record.reasons}"


def test_every_bad_file_is_held_with_its_named_reason(outcome) -> None:  # type: ignore[no-untyped-def]
    batch, ledger, _, _ = outcome
    for item in batch.files.values():
        record = _record(ledger, item.name)
        if item.expect == OK:
            assert not any(reason.startswith(INPUT_ERRORS) for reason in record.reasons), (
                f"{item.name}: {record.reasons}"
            )
            # Decoded and processed: released, held by the region policy, or collapsed as a duplicate
            # (several generated skin patches here are near-identical on purpose).
            duplicate = record.status is Status.EXCLUDED and record.reasons[0].startswith("duplicate:")
            assert record.status in (Status.OK, Status.HELD) or duplicate, f"{item.name}: {record.reasons}"
        else:
            assert record.status is Status.HELD, f"{item.name} must be held, is {record.status}"
            assert record.reasons[0].startswith(item.expect), f"{item.name}: {record.reasons}"
            assert item.reason_words in record.reasons[0], f"{item.name}: {record.reasons}"


def test_every_original_is_kept(outcome) -> None:  # type: ignore[no-untyped-def]
    batch, _, workspace, _ = outcome
    kept = {p.read_bytes() for p in (workspace / "originals").rglob("*") if p.is_file()}
    for item in batch.files.values():
        if item.payload:
            assert item.payload in kept, f"original of {item.name} not kept"


def test_bad_rows_and_unsafe_paths_are_held_by_name(outcome) -> None:  # type: ignore[no-untyped-def]
    batch, ledger, workspace, _ = outcome
    for row, words in batch.bad_rows.items():
        status = ledger.contribution_status(f"hostile/row-{row}")
        assert status is not None and status[0] is Status.HELD, f"row {row} must be held"
        assert status[1][0].startswith("invalid_case_row") and words in status[1][0], status
    for contribution_id, words in batch.unsafe_paths.items():
        status = ledger.contribution_status(contribution_id)
        assert status is not None and status[0] is Status.HELD
        assert words in status[1][0], status
    secret = batch.outside_secret.read_bytes()
    leaked = [p for p in (workspace / "originals").rglob("*") if p.is_file() and p.read_bytes() == secret]
    # The secret's bytes equal good_1.jpg's, which is legitimately kept once; never as a second copy.
    assert len(leaked) <= 1


def test_no_candidate_carries_metadata_or_a_second_frame(outcome) -> None:  # type: ignore[no-untyped-def]
    _, _, workspace, _ = outcome
    candidates = [p for folder in ("staged/images", "held") for p in (workspace / folder).glob("*.png")]
    assert len(candidates) >= 15
    for path in candidates:
        report = verify_clean(path.read_bytes(), path=path)
        assert report.ok, report.problems


def test_extra_frames_are_never_published(outcome) -> None:  # type: ignore[no-untyped-def]
    batch, ledger, workspace, _ = outcome
    for name in ("animated.gif", "animated.webp", "animated_apng.png", "multipage.tif"):
        record = _record(ledger, name)
        assert "kept frame 1 of 2" in record.reasons
        folder = "staged/images" if record.status is Status.OK else "held"
        output = np.asarray(Image.open(workspace / folder / record.staged_name).convert("RGB"), dtype=np.float64)
        frames = Image.open(io.BytesIO(batch.files[name].payload))
        first = np.asarray(frames.convert("RGB"), dtype=np.float64)
        frames.seek(1)
        second = np.asarray(frames.convert("RGB"), dtype=np.float64)
        # Frame 1 is a plain skin patch, frame 2 the astronaut: the output must be frame 1.
        assert np.abs(output - first).mean() < 3 < np.abs(output - second).mean(), f"{name}: not frame 1"


def test_a_face_hidden_by_transparency_does_not_reappear(outcome) -> None:  # type: ignore[no-untyped-def]
    _, ledger, workspace, _ = outcome
    record = _record(ledger, "alpha_face.png")
    folder = "staged/images" if record.status is Status.OK else "held"
    output = np.asarray(Image.open(workspace / folder / record.staged_name).convert("RGB"))
    hidden = output[0:260, 110:340].reshape(-1, 3)
    fill = np.asarray(load_config(CONFIG).policy.fill_rgb, dtype=np.uint8)
    white_or_filled = (hidden == 255).all(axis=1) | (hidden == fill).all(axis=1)
    assert white_or_filled.all(), (
        "transparent pixels flatten to white (or are redacted); the face underneath must not show"
    )


def test_no_csv_cell_deid_writes_can_run_as_a_formula(outcome) -> None:  # type: ignore[no-untyped-def]
    _, _, workspace, _ = outcome
    for path in workspace.rglob("*.csv"):
        for row in csv.reader(io.StringIO(path.read_text(encoding="utf-8"))):
            for cell in row:
                # A plain signed integer (SCIN's case ids are signed 64-bit) is a number to a spreadsheet, not a
                # formula; deid.csv_safety.safe_csv_cell documents that rule. Anything else must not start a formula.
                if re.fullmatch(r"-?[0-9]+", cell):
                    continue
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), f"{path.name}: {cell!r}"
