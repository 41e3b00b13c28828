"""Test workspaces for the review queue, made by running the real pipeline on small real photos.

The batch (with tests/review/review.toml):

- ``r1``: skimage's astronaut above a page of printed text: the text holds it for the image view;
  no face detector runs, so the astronaut's face is a face the machine missed;
- ``r2``: a plain skin-coloured gradient: released by the machine (and, at audit_share 1, audited);
- ``r3``: a truncated JPEG: held as unreadable, exclude only;
- ``r4``: an under-age contributor: a case hold.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as samples

from deid.batch import finish_batch
from deid.config import Config, load_config
from deid.ingest import ingest_batch
from deid.ledger import Ledger
from deid.pipeline import process_image, record_image_result
from deid.types import Box
from deid.workspace import Workspace, open_ledger

CONFIG = Path(__file__).with_name("review.toml")
FACE = Box(160, 30, 280, 200)
"""The astronaut's face (head and hair) on r1, in upright pixels: what a reviewer draws."""

HEADER = (
    "contribution_id,submitted_at,age,sex,skin_type,race_ethnicity,body_parts,symptoms,textures,duration,"
    "related_category,description,image_1,shot_type_1,image_2,shot_type_2,image_3,shot_type_3"
)


def composite_photo() -> np.ndarray:
    """The astronaut (512 x 512) above skimage's scanned page, scaled to the same width."""
    astronaut = samples.astronaut()
    page = Image.fromarray(samples.page()).convert("RGB")
    page = page.resize((512, round(page.height * 512 / page.width)))
    return np.concatenate([astronaut, np.asarray(page)], axis=0)


def skin_photo() -> np.ndarray:
    """A plain skin-coloured gradient with a darker blotch: nothing identifying."""
    y, x = np.mgrid[0:400, 0:600]
    base = np.stack([200 + 20 * x / 600, 150 + 10 * y / 400, 130 + 0 * x], axis=-1)
    blotch = ((x - 300) ** 2 + (y - 200) ** 2) < 40**2
    base[blotch] -= 40
    return base.astype(np.uint8)


def other_skin_photo() -> np.ndarray:
    """A smooth random skin-toned texture, unlike :func:`skin_photo` (so it is no near-duplicate)."""
    rng = np.random.default_rng(4)
    coarse = rng.integers(0, 60, size=(8, 12, 1)).astype(np.uint8)
    texture = np.asarray(Image.fromarray(coarse[:, :, 0]).resize((600, 400), Image.BICUBIC), dtype=np.float64)
    base = np.stack([170 + texture, 120 + texture * 0.6, 100 + texture * 0.4], axis=-1)
    return np.clip(base, 0, 255).astype(np.uint8)


def write_batch(folder: Path) -> Path:
    """Write cases.csv and images/ for the batch described above."""
    images = folder / "images"
    images.mkdir(parents=True)
    Image.fromarray(composite_photo()).save(images / "r1_face_and_text.png")
    Image.fromarray(skin_photo()).save(images / "r2_skin.png")
    out = io.BytesIO()
    Image.fromarray(skin_photo()).save(out, format="JPEG")
    (images / "r3_truncated.jpg").write_bytes(out.getvalue()[:600])
    Image.fromarray(other_skin_photo()).save(images / "r4_skin.png")
    rows = [
        "r1,2025-06-14T09:40:00Z,40,female,FST2,white,arm,itching,,ONE_TO_FOUR_WEEKS,RASH,,r1_face_and_text.png,CLOSE_UP,,,,",
        "r2,2025-06-14T09:41:00Z,52,male,FST3,white,leg,,,ONE_TO_FOUR_WEEKS,RASH,,r2_skin.png,CLOSE_UP,,,,",
        "r3,2025-06-14T09:42:00Z,33,female,FST2,white,arm,,,ONE_TO_FOUR_WEEKS,RASH,,r3_truncated.jpg,CLOSE_UP,,,,",
        "r4,2025-06-14T09:43:00Z,15,male,FST2,white,arm,,,ONE_TO_FOUR_WEEKS,RASH,,r4_skin.png,CLOSE_UP,,,,",
    ]
    (folder / "cases.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return folder


@dataclass
class Built:
    """A finished workspace and what opened it."""

    workspace: Workspace
    config: Config
    ledger: Ledger

    def image_id(self, original_name: str) -> str:
        return next(r.image_id for r in self.ledger.images() if r.original_name == original_name)


def build_workspace(root: Path, *, ledger_url: str = "") -> Built:
    """Run ingest -> process -> finish on the batch into ``root / "ws"``."""
    config = load_config(CONFIG)
    batch = write_batch(root / "batch")
    workspace = Workspace(root / "ws").create()
    ledger = Ledger(ledger_url) if ledger_url else open_ledger(workspace, config)
    ingest = ingest_batch(batch, workspace, ledger, config)
    for task in ingest.tasks:
        record_image_result(ledger, process_image(task, config, workspace))
    finish_batch(workspace, ledger, config, ingest)
    return Built(workspace, config, ledger)


def copy_workspace(built: Built, root: Path) -> Built:
    """A private copy of a built SQLite workspace (each test changes its own)."""
    target = root / "ws-copy"
    shutil.copytree(built.workspace.root, target)
    workspace = Workspace(target)
    return Built(workspace, built.config, open_ledger(workspace, built.config))
