"""The queue: routing by reason, audit sampling, keyset pagination, optimistic locking, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from deid.errors import ReviewConflict, ReviewNotFound
from deid.review.apply import apply_decisions, sync_queue
from deid.review.queue import (
    ItemState,
    QueueCandidate,
    QueueFilter,
    ReviewDecision,
    ReviewRegion,
    Route,
    Verdict,
    audit_report,
    is_audit_sample,
    plan_items,
    reason_code,
)
from deid.review.store import ReviewStore, check_password, hash_password
from deid.types import Box, Case, ImageRecord, Region, RegionKind, Status
from tests.review.workspaces import Built, build_workspace


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReviewStore]:
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'review.db'}", connect_args={"timeout": 30})
    else:
        engine = sa.create_engine(request.getfixturevalue("postgres_url"))
        with engine.begin() as connection:  # a clean slate per test on the shared server
            for table in ("review_events", "review_items", "review_sessions", "review_signin_failures", "review_users"):
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table} CASCADE")
    yield ReviewStore(engine)
    engine.dispose()


def _candidates(count: int, *, kind: RegionKind = RegionKind.FACE) -> list[QueueCandidate]:
    return [
        QueueCandidate(
            subject_type="image",
            subject=f"img{n:05d}",
            route=Route.IMAGE,
            reason_code="face_review_band" if n % 3 else "text_rule_hold",
            reasons=("face score 0.30 is below policy.rules.face.min_score 0.50: needs review",),
            contribution_id=f"c{n}",
            kinds=(kind,),
            max_score=(n % 10) / 10,
            body_parts=("arm",) if n % 2 else ("leg",),
            regions=(ReviewRegion(Region(kind, Box(1, 2, 30, 40), 0.3, "faces.test@1")),),
        )
        for n in range(count)
    ]


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        pytest.param("face score 0.35 is below policy.rules.face.min_score 0.50: needs review", "face_review_band"),
        pytest.param("tattoo score 0.90 >= 0.50: policy.rules.tattoo.action = hold", "tattoo_rule_hold"),
        pytest.param("face score 0.90 >= 0.50: policy.rules.face.action = redact", "other", id="redact-is-no-hold"),
        pytest.param("case suppressed: k-anonymity", "case_suppressed"),
        pytest.param("case held: under_min_age: age 15 is below demographics.min_age 18", "case_held"),
        pytest.param("self-reported body part face is in policy.hold_body_parts", "body_part_held"),
        pytest.param("match.review: ref.jpg at 10 bits (phash)", "match_review"),
        pytest.param("unreadable_image: cannot decode image", "unreadable_image"),
        pytest.param("invalid_case_row: missing age", "invalid_case_row"),
    ],
)
def test_reason_codes(reason: str, code: str) -> None:
    assert reason_code(reason) == code


def _record(image_id: str, cid: str, status: Status, *reasons: str, staged: bool = True) -> ImageRecord:
    return ImageRecord(
        image_id, cid, "ab" * 32, "x.png", status, staged_name=f"{image_id}.png" if staged else None, reasons=reasons
    )


def test_routing_by_reason() -> None:
    records = [
        _record("i1", "c1", Status.HELD, "face score 0.35 is below policy.rules.face.min_score 0.50: needs review"),
        _record("i2", "c2", Status.HELD, "case suppressed: k-anonymity"),
        _record("i3", "c3", Status.HELD, "unreadable_image: truncated", staged=False),
        _record("i4", "c4", Status.HELD, "self-reported body part face is in policy.hold_body_parts"),
        _record(
            "i5",
            "c5",
            Status.HELD,
            "case held: no_released_images: no image of this case made it",
        ),
        _record("i6", "c6", Status.OK, "no identifying region"),
    ]
    statuses = {
        "c2": (Status.HELD, ("case suppressed: k-anonymity",)),
        "b/row-3": (Status.HELD, ("invalid_case_row: x",)),
        "c5": (Status.HELD, ("case held: no_released_images: no image of this case made it",)),
    }
    cases = {cid: Case(cid, "2025-01-01", body_parts=frozenset({"face"})) for cid in ("c1", "c2", "c3", "c4", "c5")}
    planned = {(c.subject_type, c.subject): c for c in plan_items(records, {}, statuses, cases, audit_share=1.0)}
    assert planned["image", "i1"].route is Route.IMAGE
    assert ("image", "i2") not in planned and planned["case", "c2"].route is Route.CASE
    assert (
        planned["image", "i3"].route is Route.EXCLUDE_ONLY and planned["image", "i3"].reason_code == "unreadable_image"
    )
    assert ("image", "i4") not in planned and planned["case", "c4"].reason_code == "body_part_held"
    assert planned["image", "i5"].route is Route.IMAGE, "a derived case hold leaves the image to its own view"
    assert ("case", "c5") not in planned, "no case item for a case held only because its images are"
    assert planned["image", "i6"].audit and planned["image", "i6"].reason_code == "audit"
    assert planned["case", "b/row-3"].route is Route.EXCLUDE_ONLY, "a rejected row can only be excluded"


@given(st.text(min_size=1, max_size=40), st.floats(0.0, 1.0))
def test_audit_sample_is_deterministic_and_monotone(image_id: str, share: float) -> None:
    chosen = is_audit_sample(image_id, share)
    assert chosen == is_audit_sample(image_id, share)
    if chosen:
        assert is_audit_sample(image_id, min(1.0, share + 0.1)), "a larger share keeps every image a smaller one took"


def test_audit_share_is_close_to_configured() -> None:
    taken = sum(is_audit_sample(f"{n:032x}", 0.05) for n in range(20000))
    assert 850 < taken < 1150


@given(
    st.dictionaries(
        st.sampled_from(["kind", "box", "score", "mode", "dismissed", "note", "calibration", "raw_score"]),
        st.one_of(
            st.none(),
            st.integers(-(10**7), 10**7),
            st.floats(allow_nan=True),
            st.text(max_size=5),
            st.lists(st.one_of(st.integers(-100, 10**7), st.floats()), max_size=5),
        ),
    )
)
def test_region_parser_accepts_only_valid_boxes_inside_the_image(data: dict[str, object]) -> None:
    try:
        parsed = ReviewRegion.from_json(data, shape=(600, 800))
    except ValueError:
        return
    box = parsed.region.box
    assert 0 <= box.left < box.right <= 800 and 0 <= box.top < box.bottom <= 600
    assert 0.0 <= parsed.region.score <= 1.0
    assert parsed.region.calibration is None or 0 < len(parsed.region.calibration) <= 64
    assert parsed.region.raw_score is None or math.isfinite(parsed.region.raw_score)


def test_a_model_box_keeps_its_provenance_through_the_page_and_old_rows_have_none() -> None:
    """The page echoes a region's JSON back; the review store reads rows written before the fields existed."""
    model = Region(RegionKind.FACE, Box(10, 20, 110, 140), 0.3, "faces.ensemble@1", "seen", "mediapipe_only", 0.75)
    region = ReviewRegion(model, dismissed=True)
    assert ReviewRegion.from_json(json.loads(json.dumps(region.to_json())), shape=(600, 800)) == region
    old = {key: value for key, value in region.to_json().items() if key not in ("calibration", "raw_score")}
    parsed = ReviewRegion.from_json(old)
    assert parsed.region.calibration is None and parsed.region.raw_score is None
    assert dataclasses.replace(parsed.region, calibration="mediapipe_only", raw_score=0.75) == model


def test_passwords_are_salted_scrypt_hashes() -> None:
    one, two = hash_password("correct horse", n=1024), hash_password("correct horse", n=1024)
    assert one != two and one.startswith("scrypt$1024$") and "correct" not in one
    assert check_password("correct horse", one) and not check_password("wrong", one)
    assert not check_password("x", "plaintext")


def test_users_sessions_and_no_plain_secrets_stored(store: ReviewStore) -> None:
    password = store.add_user("ana", scrypt_n=1024)
    assert store.authenticate("ana", "wrong") is None and store.authenticate("nobody", password) is None
    reviewer = store.authenticate("ana", password)
    assert reviewer is not None and reviewer.role == "reviewer"
    token, session = store.create_session(reviewer, hours=1)
    assert store.session(token) == session and store.session("forged") is None
    with store.engine.connect() as connection:
        dumped = str(connection.execute(sa.text("SELECT * FROM review_users")).all())
        dumped += str(connection.execute(sa.text("SELECT * FROM review_sessions")).all())
    assert password not in dumped and token not in dumped
    store.end_session(token)
    assert store.session(token) is None
    with pytest.raises(ValueError):
        store.add_user("../etc", scrypt_n=1024)


def test_adding_items_is_idempotent_and_pages_cover_every_item_once(store: ReviewStore) -> None:
    assert store.add_items(_candidates(230)) == 230
    assert store.add_items(_candidates(230)) == 0
    seen: list[str] = []
    after = 0
    while True:
        page = store.list_items(QueueFilter(), after=after, limit=50)
        seen.extend(item.subject for item in page.items)
        if page.next_after is None:
            break
        after = page.next_after
    assert sorted(seen) == sorted(c.subject for c in _candidates(230)) and len(seen) == len(set(seen))
    assert store.counts_by_reason() == {"face_review_band": 153, "text_rule_hold": 77}
    text = store.list_items(QueueFilter(reason="text_rule_hold"), limit=1000).items
    assert len(text) == 77 and all(i.reason_code == "text_rule_hold" for i in text)
    banded = store.list_items(QueueFilter(min_score=0.5, max_score=0.7, body_part="arm"), limit=1000).items
    assert banded and all(0.5 <= i.max_score <= 0.7 and "arm" in i.body_parts for i in banded)
    assert not store.list_items(QueueFilter(kind=RegionKind.TEXT)).items
    assert len(store.list_items(QueueFilter(older_than_hours=0.0), limit=1000).items) == 230
    assert not store.list_items(QueueFilter(older_than_hours=1.0)).items


def test_optimistic_locking_names_who_decided(store: ReviewStore) -> None:
    store.add_items(_candidates(1))
    item = store.list_items(QueueFilter()).items[0]
    edited = store.edit_regions(item.item_id, 1, (), actor="ana")
    assert edited.version == 2 and edited.regions == ()
    with pytest.raises(ReviewConflict, match="ana"):
        store.edit_regions(item.item_id, 1, item.regions, actor="ben")
    decision = ReviewDecision(Verdict.APPROVE, Route.IMAGE)
    store.decide(item.item_id, 2, decision, actor="ana")
    with pytest.raises(ReviewConflict, match="approved by ana"):
        store.decide(item.item_id, 3, ReviewDecision(Verdict.EXCLUDE, Route.IMAGE, reason="other"), actor="ben")
    with pytest.raises(ReviewNotFound):
        store.item("0" * 32)
    events = [(e.event, e.actor) for e in store.events(item.item_id)]
    assert events == [
        ("queued", "queue"),
        ("boxes_edited", "ana"),
        ("conflict", "ben"),
        ("approved", "ana"),
        ("conflict", "ben"),
    ]


def test_concurrent_decisions_one_wins(store: ReviewStore) -> None:
    store.add_items(_candidates(1))
    item = store.list_items(QueueFilter()).items[0]
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def decide(name: str) -> None:
        barrier.wait()
        try:
            store.decide(item.item_id, 1, ReviewDecision(Verdict.APPROVE, Route.IMAGE), actor=name)
            outcomes.append("ok")
        except ReviewConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=decide, args=(f"r{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 3 + ["ok"]
    assert [e.event for e in store.events(item.item_id)].count("conflict") == 3


def test_queue_and_apply_on_a_postgres_ledger(postgres_url: str, tmp_path: Path) -> None:
    """The whole chain on a real PostgreSQL ledger: pipeline, queue, decide, apply."""
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        for table in (
            "review_events",
            "review_items",
            "review_sessions",
            "review_signin_failures",
            "review_users",
            "events",
            "matches",
            "decisions",
            "regions",
            "images",
            "contributions",
        ):
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table} CASCADE")
    engine.dispose()
    built = build_workspace(tmp_path, ledger_url=postgres_url)
    _decide_and_apply(built)


def test_queue_and_apply_on_sqlite(workspace: Built) -> None:
    _decide_and_apply(workspace)


def _decide_and_apply(built: Built) -> None:
    store = ReviewStore(built.ledger.engine)
    assert sync_queue(built.ledger, store, built.config) == 4
    assert sync_queue(built.ledger, store, built.config) == 0
    by_route = {(i.route, i.audit): i for i in store.list_items(QueueFilter(), limit=100).items}
    held = by_route[Route.IMAGE, False]
    audit = by_route[Route.IMAGE, True]
    unreadable = by_route[Route.EXCLUDE_ONLY, False]
    face = ReviewRegion(Region(RegionKind.FACE, Box(160, 30, 280, 200), 1.0, "review:ana"))
    store.decide(held.item_id, 1, ReviewDecision(Verdict.APPROVE, Route.IMAGE, (*held.regions, face)), actor="ana")
    missed = ReviewRegion(Region(RegionKind.TEXT, Box(10, 10, 60, 30), 1.0, "review:ben"))
    store.decide(audit.item_id, 1, ReviewDecision(Verdict.APPROVE, Route.IMAGE, (missed,)), actor="ben")
    store.decide(
        unreadable.item_id, 1, ReviewDecision(Verdict.EXCLUDE, Route.EXCLUDE_ONLY, reason="unusable"), actor="ana"
    )
    summary = apply_decisions(built.workspace, built.ledger, store, built.config)
    assert summary.count("staged") == 2 and summary.count("excluded") == 1 and summary.count("failed") == 0
    assert not store.decided_unapplied()
    assert apply_decisions(built.workspace, built.ledger, store, built.config).applied == (), (
        "applying twice is a no-op"
    )
    assert built.ledger.image(held.subject).status is Status.OK
    manifest = (built.workspace.staged / "manifest.json").read_text()
    assert f"images/{held.subject}.png" in manifest, "the manifest lists the newly staged image"
    assert unreadable.subject not in manifest
    record = built.ledger.image(unreadable.subject)
    assert record.status is Status.EXCLUDED and "review:ana" in record.reasons[0]
    report = audit_report(store.audit_items())
    assert report.audited == 1
    assert {m.kind: m.missed for m in report.by_kind}["text"] == 1
    assert {m.kind: m.miss_rate for m in report.by_kind}["face"] == 0.0
    assert store.item(held.item_id).state is ItemState.APPROVED
