"""The release gate refuses every tampering, one at a time, and publishes a clean workspace.

Each tamper test changes a copy of a workspace the real pipeline built from
sample_data in one way, runs the gate and checks that it refuses with the
matching check and leaves RELEASE_DIR absent (and writes the refusal).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data

from deid.cli import main
from deid.errors import ReleaseBlocked
from deid.ledger import Ledger
from deid.release import (
    CHECKS,
    MANIFEST_FILE,
    assemble_release,
    build_release,
    check_schema,
    check_unlinkability,
    earlier_release_rows,
    run_checks,
)
from deid.release_cli import EXIT_ERROR, EXIT_REFUSED
from deid.types import Case, Match, Status
from deid.workspace import Workspace
from tests.release.conftest import Built, Published


def releasable(ledger: Ledger) -> list[tuple[str, str, str]]:
    """(image id, staged name, contribution id) of images the gate would publish (OK, contribution OK)."""
    statuses = ledger.contribution_statuses()
    return [
        (r.image_id, r.staged_name, r.contribution_id)
        for r in ledger.images(status=Status.OK)
        if r.staged_name and statuses[r.contribution_id][0] is Status.OK
    ]


def png_bytes(pixels: np.ndarray, **save: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", **save)
    return buffer.getvalue()


def refuse(built: Built, *, version: str = "1.0.0", leave_pending_out: bool = True) -> list[str]:
    with pytest.raises(ReleaseBlocked) as refused:
        build_release(
            built.workspace,
            built.ledger,
            built.config,
            out=built.out,
            version=version,
            leave_pending_out=leave_pending_out,
        )
    assert not built.out.exists(), "a refused release must leave RELEASE_DIR absent"
    assert not list(built.out.parent.glob(f".{built.out.name}.*")), "the temporary folder must be removed"
    refusal = built.workspace.root / "release-refusals" / f"{version.replace('/', '_')}.json"
    assert refusal.exists() and refusal.with_suffix(".md").exists()
    return list(refused.value.reasons)


def assert_reason(reasons: list[str], check: str, text: str) -> None:
    assert any(r.startswith(f"{check}:") and text in r for r in reasons), (
        f"no {check} reason with {text!r} in {reasons}"
    )


# --- tamper one thing at a time --------------------------------------------------------------------


def put_exif_back(built: Built) -> None:
    _, name, _ = releasable(built.ledger)[0]
    path = built.workspace.staged_images / name
    pixels = np.asarray(Image.open(path).convert("RGB"))
    exif = Image.Exif()
    exif[0x010F] = "Pixelphone"  # Make
    path.write_bytes(png_bytes(pixels, exif=exif.tobytes()))


def leave_a_face_in(built: Built) -> None:
    _, name, _ = releasable(built.ledger)[0]
    (built.workspace.staged_images / name).write_bytes(png_bytes(skimage_data.astronaut()))


def record_a_verified_public_copy(built: Built) -> None:
    image_id, _, _ = releasable(built.ledger)[0]
    built.ledger.record_matches(
        image_id, [(Match("public/astronaut.png", 3.0, "phash", True), "public_copy")], actor="match"
    )


def delete_an_image(built: Built) -> None:
    _, name, _ = releasable(built.ledger)[0]
    (built.workspace.staged_images / name).unlink()


def add_an_extra_image(built: Built) -> None:
    (built.workspace.staged_images / "extra.png").write_bytes(png_bytes(np.full((64, 64, 3), 128, np.uint8)))


def mark_one_pending(built: Built) -> None:
    image_id, _, _ = releasable(built.ledger)[0]
    built.ledger.set_image_status(
        image_id, Status.HELD, ["review_requested: a reviewer asked to look again"], actor="test"
    )


@pytest.mark.parametrize(
    ("tamper", "check", "text", "leave_pending_out"),
    [
        pytest.param(put_exif_back, "pixels", "byte verifier", True, id="exif-put-back"),
        pytest.param(leave_a_face_in, "pixels", "face", True, id="face-left-in"),
        pytest.param(record_a_verified_public_copy, "pixels", "verified public copy", True, id="verified-public-copy"),
        pytest.param(delete_an_image, "files", "referenced but missing", True, id="missing-image"),
        pytest.param(add_an_extra_image, "files", "extra.png", True, id="extra-image"),
        pytest.param(mark_one_pending, "pixels", "review_requested", False, id="pending-item"),
    ],
)
def test_gate_refuses_a_tampered_workspace(
    built: Built, tamper: Callable[[Built], None], check: str, text: str, leave_pending_out: bool
) -> None:
    tamper(built)
    assert_reason(refuse(built, leave_pending_out=leave_pending_out), check, text)


def test_gate_refuses_a_version_that_is_not_semver(built: Built) -> None:
    """The input folder's name is what the old staged table wrote as ``release``; the gate wants X.Y.Z."""
    assert_reason(refuse(built, version="sample_data"), "schema", "is not semantic")


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "01.0.0", "1.0.0-rc1"])
def test_schema_check_wants_semver(assembled: Built, version: str) -> None:
    plan = dataclasses.replace(assembled.plan, version=version)  # type: ignore[attr-defined]
    result = check_schema(plan, assembled.config)
    assert not result.passed and any("is not semantic" in item for item in result.items)


def test_gate_refuses_to_publish_a_version_twice(after_first: Built) -> None:
    assert_reason(refuse(after_first, version="1.0.0"), "schema", "already published")


def test_gate_refuses_a_duplicate_of_an_earlier_release(after_first: Built) -> None:
    """A new contribution whose image copies a 1.0.0 image (upstream dedup missed it) is refused."""
    ledger = after_first.ledger
    image_id, name, contribution_id = next(
        item for item in releasable(ledger) if item[2] in {r.contribution_id for r in ledger.images()}
    )
    original = ledger.cases([contribution_id])[contribution_id]
    copy = Case(**{**{f: getattr(original, f) for f in Case.__dataclass_fields__}, "contribution_id": "c99"})
    ledger.register_contribution(copy, batch="second_batch")
    record = ledger.register_image(
        contribution_id="c99", position=1, original_name="c99_copy.jpg", shot_type="CLOSE_UP", sha256="ab" * 32
    )
    data = (after_first.workspace.staged_images / name).read_bytes()
    (after_first.workspace.staged_images / f"{record.image_id}.png").write_bytes(data)
    stored = ledger.fingerprints_of([image_id])[image_id]
    import hashlib

    ledger.record_result(
        record.image_id,
        status=Status.OK,
        reasons=["policy: nothing found"],
        actor="policy",
        staged_name=f"{record.image_id}.png",
        staged_sha256=hashlib.sha256(data).hexdigest(),
        fingerprints=stored,
    )
    reasons = refuse(after_first, version="1.1.0")
    assert_reason(reasons, "duplicates", "of an earlier release")


def test_gate_refuses_when_k_breaks_across_releases(after_first: Built) -> None:
    """A row of the kept 1.0.0 table changed so its class falls below k over all releases together."""
    kept = after_first.workspace.releases / "1.0.0" / "dataset" / "scin_cases.csv"
    rows = list(csv.DictReader(kept.open(encoding="utf-8")))
    rows[0]["year"] = "2019"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    kept.write_text(buffer.getvalue(), encoding="utf-8")
    assert_reason(refuse(after_first, version="1.1.0"), "k_anonymity", "< k=3")


# --- checks that only a tampered release tree can fail (no detectors needed) --------------------


@pytest.fixture
def assembled(built: Built) -> Built:
    built.out.mkdir()
    built.plan = assemble_release(  # type: ignore[attr-defined]
        built.workspace, built.ledger, built.config, into=built.out, version="1.0.0", leave_pending_out=True
    )
    return built


def rewrite_cases(folder: Path, change: Callable[[list[dict[str, str]]], None]) -> None:
    path = folder / "dataset" / "scin_cases.csv"
    reader = csv.DictReader(path.open(encoding="utf-8"))
    rows = list(reader)
    change(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(reader.fieldnames or []), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def test_schema_check_refuses_a_value_outside_the_vocabulary(assembled: Built) -> None:
    assert check_schema(assembled.plan, assembled.config).passed  # type: ignore[attr-defined]

    def generalise(rows: list[dict[str, str]]) -> None:
        rows[0]["fitzpatrick_skin_type"] = "FST3_OR_4"

    rewrite_cases(assembled.out, generalise)
    result = check_schema(assembled.plan, assembled.config)  # type: ignore[attr-defined]
    assert not result.passed and any("FST3_OR_4" in item and "vocabulary" in item for item in result.items)


def test_unlinkability_refuses_a_file_name_carrying_the_original_name(assembled: Built) -> None:
    assert check_unlinkability(assembled.plan, assembled.config).passed  # type: ignore[attr-defined]
    image = assembled.plan.images[0]  # type: ignore[attr-defined]
    original = assembled.ledger.image(image.image_id).original_name
    renamed = f"dataset/images/{Path(original).stem}.png"
    (assembled.out / image.path).rename(assembled.out / renamed)

    def repoint(rows: list[dict[str, str]]) -> None:
        for row in rows:
            for i in (1, 2, 3):
                if row[f"image_{i}_path"] == image.path:
                    row[f"image_{i}_path"] = renamed

    rewrite_cases(assembled.out, repoint)
    result = check_unlinkability(assembled.plan, assembled.config)  # type: ignore[attr-defined]
    assert not result.passed and any("original file name" in item for item in result.items)


def test_a_check_that_raises_refuses(assembled: Built) -> None:
    def broken(plan: object, config: object) -> object:
        raise RuntimeError("boom")

    results = run_checks(assembled.plan, assembled.config, [broken])  # type: ignore[arg-type, attr-defined]
    assert len(results) == 1 and not results[0].passed and "boom" in results[0].items[0]


# --- the published release ----------------------------------------------------------------------


def test_published_release_has_scin_layout_and_full_manifest(published: Published) -> None:
    out = published.out
    assert (out / "dataset" / "scin_cases.csv").is_file() and (out / "dataset" / "scin_labels.csv").is_file()
    images = sorted((out / "dataset" / "images").iterdir())
    assert images and all(int(p.stem) != 0 and -(2**63) <= int(p.stem) < 2**63 for p in images)
    manifest = json.loads((out / MANIFEST_FILE).read_text("utf-8"))
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != MANIFEST_FILE}
    assert set(manifest["files"]) == on_disk
    assert manifest["version"] == "1.0.0" and manifest["config_digest"] and manifest["detectors"]
    assert {c["name"] for c in manifest["checks"]} == {c.__name__.removeprefix("check_") for c in CHECKS}
    assert all(c["passed"] for c in manifest["checks"])
    rows = list(csv.DictReader((out / "dataset" / "scin_cases.csv").open(encoding="utf-8")))
    assert {row["release"] for row in rows} == {"1.0.0"}
    funnel = manifest["funnel"]
    assert funnel["pending"], "sample_data has items waiting for review: they are left out and counted"
    parts = sum(funnel["pending"].values()) + sum(funnel["excluded"].values()) + sum(funnel["withheld"].values())
    assert parts + funnel["suppressed"] + funnel["released"] == funnel["images_in"]


def test_published_release_is_kept_privately_and_counts_for_later_batches(published: Published) -> None:
    workspace = Workspace(published.workspace_root)
    assert (workspace.releases / "1.0.0" / MANIFEST_FILE).exists()
    assert (workspace.release_index / "meta.json").exists()
    rows = earlier_release_rows(workspace)
    assert rows and {row["release"] for row in rows} == {"1.0.0"}


def test_nothing_left_to_release_after_the_first(after_first: Built) -> None:
    """Contributions are published once: a second release of the same workspace holds no old case."""
    plan_dir = after_first.root / "candidate"
    plan_dir.mkdir()
    plan = assemble_release(
        after_first.workspace,
        after_first.ledger,
        after_first.config,
        into=plan_dir,
        version="1.1.0",
        leave_pending_out=True,
    )
    assert plan.rows == () and plan.funnel.already_released > 0


def test_cli_exit_codes(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    missing = main(
        ["release", "--workspace", str(built.root / "nowhere"), "--out", str(built.out), "--version", "1.0.0"]
    )
    assert missing == EXIT_ERROR
    shutil.rmtree(built.workspace.staged_images)
    built.workspace.staged_images.mkdir()
    config = str(Path(__file__).with_name("release.toml"))
    refused = main(
        [
            "release",
            "--workspace",
            str(built.workspace.root),
            "--out",
            str(built.out),
            "--version",
            "1.0.0",
            "--leave-pending-out",
            "--config",
            config,
        ]
    )
    printed = capsys.readouterr().out
    assert refused == EXIT_REFUSED and "refused" in printed and "referenced but missing" in printed
    assert not built.out.exists()
