"""No contributor free text or exact age reaches a log line or an error message.

Logs and errors name ledger ids and reason codes (the run summary may name
the curator's own file names). The sample batch plants a phone number and a
street address in its free text; this runs part of it through the library,
captures every log record and warning, forces a ledger error on a case, and
searches all of it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from deid.batch import finish_batch
from deid.cases import read_cases
from deid.config import load_config
from deid.errors import DeidError
from deid.ingest import ingest_batch
from deid.ledger import Ledger, ledger_url
from deid.pipeline import process_image, record_image_result
from deid.workspace import Workspace, open_ledger
from tests.sample_batches import sample_rows, sample_subset

CHOSEN = ("c01", "c10", "c12")  # free text with a phone number, free text with an address, an under-age case
FACES_ONLY = Path(__file__).with_name("policies") / "faces_only.toml"


def _sample_rows() -> list[dict[str, str]]:
    return sample_rows(CHOSEN)


def _secrets(rows: list[dict[str, str]]) -> list[re.Pattern[str]]:
    """The free text (and its distinctive parts) and each exact age as it would be written next to a key."""
    patterns = []
    for row in rows:
        text = row["description"].strip()
        if text:
            patterns.append(re.compile(re.escape(text)))
            patterns.extend(
                re.compile(re.escape(part)) for part in re.findall(r"[0-9][0-9 ]{6,}[0-9]|[A-Z][a-z]+ Road", text)
            )
        if row["age"]:
            patterns.append(re.compile(rf"\bage\W{{0,4}}{row['age']}\b", re.IGNORECASE))
    return patterns


def test_planted_free_text_is_really_there() -> None:
    assert any("07700 900123" in row["description"] for row in _sample_rows()), "the sample data changed"


@pytest.mark.slow
def test_no_log_line_or_error_of_a_sample_run_names_free_text_or_ages(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = _sample_rows()
    secrets = _secrets(rows)
    config = load_config(FACES_ONLY)
    workspace = Workspace(tmp_path / "ws").create()
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        ledger = open_ledger(workspace, config)
        ingest = ingest_batch(sample_subset(tmp_path / "batch", CHOSEN), workspace, ledger, config)
        for task in ingest.tasks:
            record_image_result(ledger, process_image(task, config, workspace))
        summary = finish_batch(workspace, ledger, config, ingest)
        # A forced ledger error while writing a case: the database refuses every write.
        read_only = Ledger(ledger_url(workspace.root).replace("sqlite:///", "sqlite:///file:") + "?mode=ro&uri=true")
        cases, _ = read_cases(sample_subset(tmp_path / "again", CHOSEN) / "cases.csv")
        with pytest.raises(DeidError) as raised:
            read_only.register_contribution(cases[0], batch="again")
        texts.append(str(raised.value))
        texts.append(repr(raised.value.__cause__) if raised.value.__cause__ else "")
    texts.extend(record.getMessage() for record in caplog.records)
    texts.extend(item.original_name + " " + " ".join(item.reasons) for item in summary.items)
    assert summary.images_in >= 3 and caplog.records, "the run logged something to search"
    found = [(pattern.pattern, text[:200]) for text in texts for pattern in secrets if pattern.search(text)]
    assert not found, f"contributor data in logs or errors: {found[:3]}"
