"""The ledger on SQLite and on a real PostgreSQL server: ids, idempotence, audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from deid.errors import LedgerError
from deid.ledger import Ledger
from deid.types import Action, Box, Case, Decision, Match, Region, RegionKind, Status
from tests.servers import running_postgres


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with running_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    if request.param == "sqlite":
        opened = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    else:
        opened = Ledger(request.getfixturevalue("postgres_url"))
        with opened.engine.begin() as connection:  # a clean slate per test on the shared server
            for table in ("events", "matches", "decisions", "regions", "images", "contributions"):
                connection.exec_driver_sql(f"DELETE FROM {table}")
    yield opened
    opened.close()


def _case(contribution_id: str = "c1") -> Case:
    return Case(contribution_id, "2025-01-02T03:04:05Z", age=40, race_ethnicity=frozenset({"asian", "white"}))


def test_case_id_is_random_stable_and_unlinkable(ledger: Ledger) -> None:
    first = ledger.register_contribution(_case("c1"), batch="b1")
    again = ledger.register_contribution(_case("c1"), batch="b2")
    other = ledger.register_contribution(_case("c2"), batch="b1")
    assert first == again, "a contribution keeps its case_id across batches and releases"
    assert first != other
    assert -(2**63) <= first < 2**63 and first != 0, "signed 64-bit, as SCIN's case ids (deid.ids.new_case_id)"
    assert "c1" not in str(first)


def test_image_registration_is_idempotent_and_ids_are_opaque(ledger: Ledger) -> None:
    ledger.register_contribution(_case(), batch="b")
    a = ledger.register_image(
        contribution_id="c1", position=1, original_name="x.jpg", shot_type="CLOSE_UP", sha256="ab" * 32
    )
    b = ledger.register_image(
        contribution_id="c1", position=1, original_name="x.jpg", shot_type="CLOSE_UP", sha256="ab" * 32
    )
    assert a.image_id == b.image_id
    assert "ab" not in a.image_id[:4] or a.image_id != "ab" * 16, "the id is random, not a hash of the bytes"
    assert len(ledger.images()) == 1
    assert a.status is Status.HELD, "an image is held until processing says otherwise (fail closed)"


def test_results_regions_decisions_and_audit_trail(ledger: Ledger) -> None:
    ledger.register_contribution(_case(), batch="b")
    record = ledger.register_image(
        contribution_id="c1", position=1, original_name="x.jpg", shot_type=None, sha256="cd" * 32
    )
    face = Region(RegionKind.FACE, Box(1, 2, 30, 40), 0.9, "faces.test@1", "frontal")
    text = Region(RegionKind.TEXT, Box(50, 60, 90, 70), 0.8, "text.test@1", "DOE, JOHN")
    decision = Decision(Action.REDACT, (face, text), ("face score 0.90 >= 0.50",))
    ledger.record_result(
        record.image_id,
        status=Status.OK,
        reasons=decision.reasons,
        actor="policy",
        decision=decision,
        found=[face, text],
        staged_name="s.png",
        staged_sha256="ef" * 32,
    )
    ledger.record_matches(record.image_id, [(Match("public/a.jpg", 3, "phash", True), "public_copy")], actor="match")
    stored = ledger.image(record.image_id)
    assert stored.status is Status.OK and stored.action is Action.REDACT and stored.staged_name == "s.png"
    assert set(ledger.regions_of(record.image_id)) == {face, text}
    details = ledger.image_details(record.image_id)
    assert details.matches[0].verdict == "public_copy"
    events = [e.event for e in ledger.events(record.image_id)]
    assert events == ["image_registered", "image_ok", "matches_recorded"]
    # Re-recording replaces regions rather than piling them up.
    ledger.record_result(record.image_id, status=Status.HELD, reasons=["review"], actor="policy", found=[face])
    assert ledger.regions_of(record.image_id) == [face]


def test_regions_keep_their_calibration_provenance(ledger: Ledger) -> None:
    ledger.register_contribution(_case(), batch="b")
    record = ledger.register_image(
        contribution_id="c1", position=1, original_name="x.jpg", shot_type=None, sha256="cd" * 32
    )
    face = Region(RegionKind.FACE, Box(1, 2, 30, 40), 0.3, "faces.ensemble@1", "seen", "mediapipe_only", 0.7500001)
    drawn = Region(RegionKind.TEXT, Box(5, 5, 9, 9), 1.0, "review:ana")
    decision = Decision(Action.HOLD, (face, drawn), ("face held",))
    ledger.record_result(
        record.image_id, status=Status.HELD, reasons=decision.reasons, actor="policy", decision=decision, found=[face]
    )
    assert ledger.regions_of(record.image_id) == [face]
    recorded = ledger.latest_decision(record.image_id)
    assert recorded is not None and recorded.decision.regions == (face, drawn)


def test_a_ledger_from_before_region_provenance_opens_reads_and_writes(ledger: Ledger) -> None:
    """Its regions table lacks the two columns: opening adds them, old rows read as no provenance."""
    ledger.register_contribution(_case(), batch="b")
    record = ledger.register_image(
        contribution_id="c1", position=1, original_name="x.jpg", shot_type=None, sha256="cd" * 32
    )
    url = ledger.url
    with ledger.engine.begin() as connection:  # back to the schema older deid versions wrote
        connection.exec_driver_sql("ALTER TABLE regions DROP COLUMN calibration")
        connection.exec_driver_sql("ALTER TABLE regions DROP COLUMN raw_score")
        connection.execute(
            sa.text(
                'INSERT INTO regions (image_id, kind, "left", top, "right", bottom, score, source, note) '
                "VALUES (:image_id, 'face', 1, 2, 30, 40, 0.3, 'faces.ensemble@1', 'old note')"
            ),
            {"image_id": record.image_id},
        )
    ledger.close()
    reopened, again = Ledger(url), Ledger(url)  # a second process finds the columns already there
    try:
        old = Region(RegionKind.FACE, Box(1, 2, 30, 40), 0.3, "faces.ensemble@1", "old note")
        assert reopened.regions_of(record.image_id) == [old]
        new = Region(RegionKind.FACE, Box(1, 2, 30, 40), 0.3, "faces.ensemble@1", "new", "agreed", 0.3)
        reopened.record_result(record.image_id, status=Status.HELD, reasons=["r"], actor="policy", found=[new])
        assert again.regions_of(record.image_id) == [new]
    finally:
        reopened.close()
        again.close()


def test_contribution_status_changes_are_audited(ledger: Ledger) -> None:
    ledger.register_contribution(_case(), batch="b")
    ledger.set_contribution_status("c1", Status.HELD, ["under 18"], actor="demographics")
    assert ledger.contribution_status("c1") == (Status.HELD, ("under 18",))
    assert ledger.events("c1")[-1].actor == "demographics"


def test_unknown_image_and_bad_url_are_ledger_errors(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    with pytest.raises(LedgerError, match="no such image"):
        ledger.image("nope")
    with pytest.raises(LedgerError, match="cannot open ledger"):
        Ledger("postgresql+psycopg://user:secret@127.0.0.1:1/none")
