"""Reviewers' "nothing there" answers: counted per kind and detector, and fed back into calibration (issue 17).

Workspaces are the review batch (tests/review/workspaces.py, built by the real pipeline) plus, for
the counts a calibration needs, held images recorded the way the pipeline records them: the
faces.ensemble region a BlazeFace-only face gets (its calibrated score, note, table and raw score;
or, as stored before regions carried their provenance, score and note only), through the real
policy, into the real ledger and queue. Reviewers answer through the store and the CLI.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import json
import tomllib
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deid.cli import EXIT_ERROR, EXIT_OK, main
from deid.config import Config, DetectorSettings, KindRule, load_config
from deid.policy import apply_policy
from deid.review.apply import sync_queue
from deid.review.feedback import (
    OVERLAY_HEADER,
    TABLE_MARKERS,
    Answer,
    Zone,
    calibration_tables,
    evaluate_table,
    feedback_report,
    invert_table,
    isotonic_fit,
    item_outcomes,
    propose_calibration,
    propose_table,
    read_outcomes,
    reviewer_answers,
    score_edges,
    table_of,
    wilson_upper,
)
from deid.review.queue import (
    ItemState,
    QueueFilter,
    ReviewItem,
    ReviewRegion,
    Route,
    Verdict,
    reviewer_decision,
)
from deid.review.store import ReviewStore
from deid.types import Action, Box, Case, Region, RegionKind, Status
from tests.review.workspaces import CONFIG, Built, copy_workspace

FACES_SOURCE = "faces.ensemble@mediapipe+centerface+landmarks-0.10.21"
FACE_BOX = Box(200, 100, 300, 220)
SHAPE = (400, 600)


def _blazeface_only(config: Config, raw: float, box: Box = FACE_BOX, *, legacy: bool = False) -> Region:
    """The region FaceEnsembleDetector makes of a face only BlazeFace saw at ``raw`` (``legacy``: as stored
    before regions carried their table and raw score)."""
    table = config.detection.detectors["faces.ensemble"].calibration["mediapipe_only"]
    note = f"mediapipe face (full range); seen by mediapipe only ({raw:.2f})"
    region = Region(RegionKind.FACE, box, evaluate_table(table, raw), FACES_SOURCE, note)
    return region if legacy else dataclasses.replace(region, calibration="mediapipe_only", raw_score=raw)


def _hold_faces(built: Built, raws: list[float], *, contribution: str = "fb", legacy: bool = False) -> list[ReviewItem]:
    """One held image per raw score, recorded as the pipeline records it, queued; their items in order."""
    ledger, config = built.ledger, built.config
    ledger.register_contribution(Case(contribution, "2025-06-14T10:00:00Z", body_parts=frozenset({"arm"})), batch="fb")
    ids = []
    for position, raw in enumerate(raws, start=1):
        record = ledger.register_image(
            contribution_id=contribution,
            position=position,
            original_name=f"{contribution}_{position}.jpg",
            shot_type=None,
            sha256=f"{position:064x}",
        )
        found = [_blazeface_only(config, raw, legacy=legacy)]
        decision = apply_policy(found, config.policy, image_shape=SHAPE)
        assert decision.action is Action.HOLD, decision.reasons
        ledger.record_result(
            record.image_id,
            status=Status.HELD,
            reasons=decision.reasons,
            actor="pipeline",
            decision=decision,
            found=found,
            staged_name=f"{record.image_id}.png",
            width=SHAPE[1],
            height=SHAPE[0],
        )
        ids.append(record.image_id)
    store = ReviewStore(ledger.engine)
    sync_queue(ledger, store, config)
    return [_item_of(store, image_id) for image_id in ids]


def _item_of(store: ReviewStore, image_id: str) -> ReviewItem:
    item = store.item_for("image", image_id)
    assert item is not None
    return item


def _approve(store: ReviewStore, item: ReviewItem, regions: tuple[ReviewRegion, ...] | None = None) -> None:
    """Approve as the page does: the item's working boxes, or the ones given."""
    decision = reviewer_decision(
        item,
        Verdict.APPROVE,
        view=Route.IMAGE,
        regions=regions,
        reason="",
        comment="",
        exclude_reasons=(),
        role="admin",
    )
    store.decide(item.item_id, item.version, decision, actor="ana")


def _dismiss_all(store: ReviewStore, item: ReviewItem) -> ReviewItem:
    """Press ``f`` on every box ("not a face"), then save: the boxes stay on the record, dismissed."""
    dismissed = tuple(dataclasses.replace(r, dismissed=True) for r in item.regions)
    return store.edit_regions(item.item_id, item.version, dismissed, actor="ana")


def _answer(store: ReviewStore, items: list[ReviewItem], *, confirmed: int) -> None:
    """The first ``confirmed`` items approved as proposed (the face is real); every other dismissed and approved."""
    for index, item in enumerate(items):
        _approve(store, item if index < confirmed else _dismiss_all(store, item))


def _run(capsys: pytest.CaptureFixture[str], built: Built, *args: str) -> tuple[int, str, str]:
    code = main(["review", *args, "--workspace", str(built.workspace.root), "--config", str(CONFIG)])
    out, err = capsys.readouterr()
    return code, out, err


def _text_item(store: ReviewStore) -> ReviewItem:
    return next(i for i in store.list_items(QueueFilter(), limit=100).items if i.reason_code == "text_rule_hold")


# what a reviewer's answer is ----------------------------------------------


def test_report_counts_nothing_there_per_kind_and_detector(
    workspace: Built, capsys: pytest.CaptureFixture[str]
) -> None:
    """Dismissed, deleted and approved-without-a-box boxes are nothing there; kept and moved ones are confirmed."""
    store = ReviewStore(workspace.ledger.engine)
    sync_queue(workspace.ledger, store, workspace.config)
    # r1: the page of text, 7 legible lines held by the text rule. "Not text" on three of them.
    text = _text_item(store)
    assert len(text.model_regions) == 7
    edited = tuple(dataclasses.replace(r, dismissed=i < 3) for i, r in enumerate(text.regions))
    _approve(store, store.edit_regions(text.item_id, text.version, edited, actor="ana"))

    kept, moved, dismissed, removed, deleted, pending = _hold_faces(workspace, [0.75, 0.78, 0.8, 0.82, 0.76, 0.77])
    _approve(store, kept)
    nudged = dataclasses.replace(moved.regions[0].region, box=Box(210, 110, 310, 230))
    _approve(store, moved, (ReviewRegion(nudged),))
    _approve(store, _dismiss_all(store, dismissed))
    code, _, _ = _run(capsys, workspace, "decide", removed.item_id, "--approve", "--boxes", "[]")  # approve, no box
    assert code == EXIT_OK
    elsewhere = ReviewRegion(Region(RegionKind.FACE, Box(0, 0, 50, 50), 1.0, "review:ana"))
    _approve(store, deleted, (elsewhere,))  # the model's box deleted, a different face drawn
    assert store.item(pending.item_id).state is ItemState.PENDING

    answers = {o.image_id: o.answer for o in read_outcomes(store, workspace.ledger, workspace.config)}
    assert answers[kept.subject] is answers[moved.subject] is Answer.CONFIRMED
    assert {answers[i.subject] for i in (dismissed, removed, deleted)} == {Answer.NOTHING_THERE}
    assert pending.subject not in answers, "an undecided item says nothing yet"

    code, out, _ = _run(capsys, workspace, "feedback", "--json")
    report = json.loads(out)
    assert code == EXIT_OK
    by_kind = {group["name"]: group for group in report["by_kind"]}
    assert (by_kind["text"]["held"], by_kind["text"]["nothing_there"]) == (7, 3)
    assert (by_kind["face"]["held"], by_kind["face"]["nothing_there"]) == (5, 3)
    by_detector = {group["name"]: group for group in report["by_detector"]}
    assert by_detector["faces.ensemble"]["nothing_there_share"] == 0.6
    band = by_detector["faces.ensemble"]["bands"]
    assert sum(b["reviewed"] for b in band) == 5 and sum(b["confirmed"] for b in band) == 2
    assert all(0.2 <= b["low"] < b["high"] <= 0.5 for b in band), "every face here was held in the review band"

    code, out, _ = _run(capsys, workspace, "feedback")
    assert code == EXIT_OK
    assert "text.rapidocr: 7 regions held, 3 nothing there (0.43)" in out
    assert "faces.ensemble: 5 regions held, 3 nothing there (0.60)" in out
    # Only ledger ids, detector names and counts: no text read off a photo, no file or contribution name.
    for private in ("markers", "segmentation", "r1_face_and_text", "fb_1", "mediapipe face"):
        assert private not in out and private not in json.dumps(report)

    code, out, _ = _run(capsys, workspace, "audit-report", "--json")
    assert code == EXIT_OK and json.loads(out)["audited"] == 0, "audit-report is unaffected"


def test_an_identifying_exclusion_confirms_what_was_not_dismissed(workspace: Built) -> None:
    store = ReviewStore(workspace.ledger.engine)
    first, second = _hold_faces(workspace, [0.75, 0.75])
    for item in (first, _dismiss_all(store, second)):
        decision = reviewer_decision(
            item,
            Verdict.EXCLUDE,
            view=Route.IMAGE,
            regions=None,
            reason="identifying",
            comment="",
            exclude_reasons=workspace.config.review.exclude_reasons,
            role="reviewer",
        )
        store.decide(item.item_id, item.version, decision, actor="ben")
    answers = [answer for _, answer in reviewer_answers(store.item(first.item_id))]
    answers += [answer for _, answer in reviewer_answers(store.item(second.item_id))]
    assert answers == [Answer.CONFIRMED, Answer.NOTHING_THERE]


def test_detectors_name_their_tables_and_their_notes_still_match_the_fallback() -> None:
    """Regions name their table; the note markers read for rows stored before still match what detectors write.

    Faces end to end; body and text in their source (tests/detect/test_provenance.py runs them on photos).
    """
    from deid.detect.body import NudenetBodyDetector
    from deid.detect.calibration import read_calibration
    from deid.detect.faces import FaceEnsembleDetector
    from deid.detect.text import RapidOcrTextDetector

    ensemble = FaceEnsembleDetector.__new__(FaceEnsembleDetector)  # no models: only its calibration step runs
    ensemble.options = {"merge_iou": 0.3}
    ensemble.calibration = read_calibration(DetectorSettings(), FaceEnsembleDetector.calibration_defaults, "faces")
    face = Region(RegionKind.FACE, FACE_BOX, 0.8, FACES_SOURCE, "merged")
    members = {
        "agreed": ("faces.mediapipe@1", "faces.centerface@1"),
        "mediapipe_only": ("faces.mediapipe@1",),
        "centerface_only": ("faces.centerface@1",),
    }
    for table, sources in members.items():
        seen = [Region(RegionKind.FACE, FACE_BOX, 0.8, source) for source in sources]
        calibrated = ensemble._calibrated(face, seen)
        assert (calibrated.calibration, calibrated.raw_score) == (table, 0.8)
        assert table_of(calibrated) == table
        assert table_of(dataclasses.replace(calibrated, calibration=None, raw_score=None)) == table, "the fallback"
    body = inspect.getsource(NudenetBodyDetector.detect)
    assert '"on a body (context' in body and '"no body around it (context' in body and "}, {where}" in body
    assert 'note = f"text read as {text!r}' in inspect.getsource(RapidOcrTextDetector.detect)
    head = Region(RegionKind.FACE, FACE_BOX, 0.3, FACES_SOURCE, "pose landmarks: a head on shoulders")
    assert table_of(head) is None, "a pose head has a fixed option score, no table"


# the proposal on a workspace ------------------------------------------------


def test_overlay_loads_as_a_deid_toml_and_changes_only_calibration_tables(
    workspace: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ReviewStore(workspace.ledger.engine)
    _answer(store, _hold_faces(workspace, [0.75] * 25), confirmed=0)
    overlay = tmp_path / "calibration-feedback.toml"
    code, out, _ = _run(capsys, workspace, "feedback", "--write-overlay", str(overlay))
    assert code == EXIT_OK and str(overlay) in out
    assert "faces.ensemble mediapipe_only (face): 25 answers" in out and ": changed" in out
    text = overlay.read_text()
    assert text.startswith(OVERLAY_HEADER) and "25 reviewed, 0 real, Wilson upper 0.133" in text

    defaults, proposed = load_config(), load_config(overlay)
    parsed = tomllib.loads(text)
    assert list(parsed) == ["detection"] and list(parsed["detection"]) == ["detectors"]
    assert parsed["detection"]["detectors"] == {"faces.ensemble": {"calibration": {"mediapipe_only": mock.ANY}}}
    changed = {
        (name, table)
        for name, settings in proposed.detection.detectors.items()
        for table, points in settings.calibration.items()
        if defaults.detection.detectors[name].calibration[table] != points
    }
    assert changed == {("faces.ensemble", "mediapipe_only")}
    restored = {
        name: dataclasses.replace(settings, calibration=defaults.detection.detectors[name].calibration)
        for name, settings in proposed.detection.detectors.items()
    }
    assert restored == dict(defaults.detection.detectors), "options and switches are untouched"
    same = dataclasses.replace(proposed, detection=defaults.detection, source=defaults.source)
    assert same == defaults, "nothing outside the calibration tables changes"

    # A second run replaces its own overlay; it never writes over the configuration or a stranger's file.
    code, _, _ = _run(capsys, workspace, "feedback", "--write-overlay", str(overlay))
    assert code == EXIT_OK
    code, _, err = _run(capsys, workspace, "feedback", "--write-overlay", str(CONFIG))
    assert code == EXIT_ERROR and "output_error" in err and str(CONFIG.resolve()) in err
    mine = tmp_path / "deid.toml"
    mine.write_text("[demographics]\nk = 3\n")
    code, _, err = _run(capsys, workspace, "feedback", "--write-overlay", str(mine))
    assert code == EXIT_ERROR and str(mine) in err and mine.read_text() == "[demographics]\nk = 3\n"


def test_a_few_answers_change_nothing(workspace: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = ReviewStore(workspace.ledger.engine)
    _answer(store, _hold_faces(workspace, [0.72, 0.75, 0.78, 0.8, 0.82]), confirmed=0)
    proposals = propose_calibration(read_outcomes(store, workspace.ledger, workspace.config), workspace.config)
    assert [(p.table, p.changed) for p in proposals] == [("mediapipe_only", False)]
    assert proposals[0].proposed == workspace.config.detection.detectors["faces.ensemble"].calibration["mediapipe_only"]
    overlay = tmp_path / "overlay.toml"
    code, _, _ = _run(capsys, workspace, "feedback", "--write-overlay", str(overlay))
    assert code == EXIT_OK and tomllib.loads(overlay.read_text()) == {}, "no table to add"


@pytest.mark.parametrize("legacy", [pytest.param(False, id="provenance"), pytest.param(True, id="stored-before")])
@pytest.mark.parametrize(
    ("confirmed", "released"),
    [pytest.param(0, True, id="all-nothing-there"), pytest.param(1, False, id="one-real-face")],
)
def test_many_nothing_there_answers_lower_the_band_but_never_below_what_a_real_finding_needs(
    workspace: Built, confirmed: int, released: bool, legacy: bool
) -> None:
    store = ReviewStore(workspace.ledger.engine)
    _answer(store, _hold_faces(workspace, [0.75] * 25, legacy=legacy), confirmed=confirmed)
    (proposal,) = propose_calibration(read_outcomes(store, workspace.ledger, workspace.config), workspace.config)
    rule = workspace.config.policy.rule_for(RegionKind.FACE)
    before, after = proposal.current, proposal.proposed
    assert evaluate_table(before, 0.75) == pytest.approx(0.3)
    assert evaluate_table(after, 0.75) < evaluate_table(before, 0.75), "consistent answers lower the band"
    assert evaluate_table(after, 0.75) >= wilson_upper(confirmed, 25), "never below the Wilson bound"
    assert (evaluate_table(after, 0.75) < rule.review_score) is released
    if confirmed:
        assert evaluate_table(after, 0.75) >= rule.review_score, "a real face there keeps its bin held"
    raws = [0.55 + i * 0.005 for i in range(91)]
    assert all(evaluate_table(after, x) >= evaluate_table(before, x) - 1e-9 for x in raws if x >= 0.775), (
        "nothing above the answered bin is lowered"
    )
    redacted = [x for x in raws if evaluate_table(before, x) >= rule.min_score]
    assert all(evaluate_table(after, x) >= evaluate_table(before, x) - 1e-9 for x in redacted)
    probabilities = [p for _, p in after]
    assert probabilities == sorted(probabilities) and all(0.0 <= p <= 1.0 for p in probabilities)


def test_regions_stored_before_provenance_get_the_same_outcomes_and_proposal(built: Built, tmp_path: Path) -> None:
    """An existing workspace (score and note only) is read through the note and the inverse, to the same result."""
    raws = [0.74, 0.745, 0.75, 0.76, 0.77] * 5  # one bin of the review band (raw 0.7375-0.775)
    found = {}
    for legacy in (False, True):
        copy = copy_workspace(built, tmp_path / str(legacy))
        store = ReviewStore(copy.ledger.engine)
        _answer(store, _hold_faces(copy, raws, legacy=legacy), confirmed=0)
        outcomes = [o for o in read_outcomes(store, copy.ledger, copy.config) if o.detector == "faces.ensemble"]
        assert [o.table for o in outcomes] == ["mediapipe_only"] * len(raws)
        assert [o.raw for o in outcomes] == pytest.approx(raws)
        found[legacy] = (outcomes, propose_calibration(outcomes, copy.config))
        copy.ledger.close()
    (new, new_proposals), (old, old_proposals) = found[False], found[True]
    assert [o.detector_score for o in new] == pytest.approx([o.detector_score for o in old])
    assert new_proposals == old_proposals and new_proposals[0].changed


def test_a_reworded_note_changes_nothing_the_region_names_its_table(workspace: Built) -> None:
    """The table and raw score come from the region, whatever its note (or the ledger box's note) says."""
    store = ReviewStore(workspace.ledger.engine)
    (item,) = _hold_faces(workspace, [0.75])
    _approve(store, _dismiss_all(store, item))
    decided = store.item(item.item_id)
    tables = calibration_tables(workspace.config)
    detected = workspace.ledger.image_details(decided.subject).regions
    other_phrases = [marker.phrase for marker in TABLE_MARKERS if marker.table != "mediapipe_only"]

    @settings(max_examples=60, deadline=None)
    @given(note=st.one_of(st.text(max_size=60), st.sampled_from(other_phrases).map(lambda p: f"face{p}0.99)")))
    def reworded(note: str) -> None:
        models = tuple(
            dataclasses.replace(r, region=dataclasses.replace(r.region, note=note)) for r in decided.model_regions
        )
        ledger_boxes = [dataclasses.replace(r, note=note, calibration=None, raw_score=None) for r in detected]
        (outcome,) = item_outcomes(dataclasses.replace(decided, model_regions=models), ledger_boxes, tables)
        assert (outcome.table, outcome.raw, outcome.answer) == ("mediapipe_only", 0.75, Answer.NOTHING_THERE)
        table = tables["faces.ensemble"]["mediapipe_only"]
        assert outcome.detector_score == evaluate_table(table, 0.75)

    reworded()
    # The same note on a region stored before provenance is what the fallback reads: it would name another table.
    legacy = dataclasses.replace(decided.model_regions[0].region, note=f"face{other_phrases[0]}0.99)", calibration=None)
    assert table_of(legacy) != "mediapipe_only"


@pytest.mark.parametrize("command", [["feedback"], ["list"], ["add-user", "ana"], ["audit-report"]])
def test_a_missing_workspace_is_a_deid_error_naming_it(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every review command refuses a mistyped workspace instead of opening (creating) an empty ledger."""
    missing = tmp_path / "no-such-workspace"
    code = main(["review", *command, "--workspace", str(missing)])
    _, err = capsys.readouterr()
    error = json.loads(err)
    assert code == EXIT_ERROR and error["error"] == "ledger_error" and error["path"] == str(missing)
    assert not missing.exists(), "nothing is created"


# the fit, as properties ------------------------------------------------------

_raws = st.lists(st.integers(0, 200), min_size=2, max_size=6, unique=True).map(lambda xs: sorted(x / 100 for x in xs))
_probabilities = st.lists(st.integers(0, 100), min_size=6, max_size=6).map(lambda ps: sorted(p / 100 for p in ps))


@st.composite
def _tables(draw: st.DrawFn) -> tuple[tuple[float, float], ...]:
    raws = draw(_raws)
    probabilities = draw(_probabilities)[: len(raws)]
    return tuple(zip(raws, probabilities, strict=True))


@st.composite
def _rules(draw: st.DrawFn) -> KindRule:
    review, minimum = sorted(draw(st.lists(st.integers(0, 100), min_size=2, max_size=2)))
    return KindRule(Action.REDACT, minimum / 100, review / 100, 0.1)


@settings(max_examples=300, deadline=None)
@given(
    table=_tables(),
    rule=_rules(),
    answers=st.lists(st.tuples(st.floats(-0.1, 2.1), st.booleans()), max_size=80),
    min_count=st.integers(1, 12),
    bins=st.integers(1, 5),
)
def test_proposed_table_is_monotone_in_range_and_never_below_the_privacy_floors(
    table: tuple[tuple[float, float], ...],
    rule: KindRule,
    answers: list[tuple[float, bool]],
    min_count: int,
    bins: int,
) -> None:
    scored = [(evaluate_table(table, raw), raw, real) for raw, real in answers]
    proposed, evidence = propose_table(
        table, [(s, real) for s, _, real in scored], rule, min_count=min_count, bins=bins
    )
    DetectorSettings(calibration={"t": proposed})  # what deid.toml accepts: raws increase, 0..1, non-decreasing
    probabilities = [p for _, p in proposed]
    assert probabilities == sorted(probabilities) and all(0.0 <= p <= 1.0 for p in probabilities)
    if not any(b.reviewed >= min_count for b in evidence):
        assert proposed == table, "without enough answers nothing changes"
    grid = sorted({*(x / 200 for x in range(-20, 421)), *(raw for _, raw, _ in scored)})
    assert sum(b.reviewed for b in evidence) == len(answers), "every answer lands in a bin the table reaches"
    for score, raw, _ in scored:
        recovered = invert_table(table, min(max(score, table[0][1]), table[-1][1]))
        assert recovered is not None and recovered <= max(raw, table[0][0]) + 1e-9, "the inverse errs low"
        found = [b for b in evidence if b.raw_low <= recovered][-1]
        if found.wilson_upper is not None:
            assert evaluate_table(proposed, raw) >= found.wilson_upper - 1e-9, "an answered bin keeps its bound"
    for x in grid:
        before, after = evaluate_table(table, x), evaluate_table(proposed, x)
        if before >= rule.min_score:
            assert after >= before - 1e-9, "a redaction is never lowered"
    for b in evidence:
        if b.zone is Zone.BAND and b.confirmed:
            inside = [x for x in grid if b.raw_low <= x < b.raw_high]
            assert all(evaluate_table(proposed, x) >= rule.review_score - 1e-9 for x in inside), (
                "a real finding stays held"
            )


@given(
    st.lists(st.tuples(st.floats(0, 1), st.integers(1, 50)), min_size=1, max_size=30),
)
def test_isotonic_fit_is_non_decreasing_keeps_the_weighted_mean_and_stays_in_range(
    pairs: list[tuple[float, int]],
) -> None:
    values, weights = [v for v, _ in pairs], [w for _, w in pairs]
    fitted = isotonic_fit(values, weights)
    assert len(fitted) == len(values)
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(fitted))
    assert min(values) - 1e-12 <= min(fitted) and max(fitted) <= max(values) + 1e-12
    total = sum(weights)
    assert sum(f * w for f, w in zip(fitted, weights, strict=True)) / total == pytest.approx(
        sum(v * w for v, w in zip(values, weights, strict=True)) / total
    )


@given(st.integers(0, 200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_bound_is_above_the_observed_share(pair: tuple[int, int]) -> None:
    confirmed, total = pair
    bound = wilson_upper(confirmed, total)
    assert 0.0 <= bound <= 1.0
    assert bound >= (confirmed / total if total else 1.0) - 1e-12


def test_the_inverse_recovers_the_raw_score_of_a_strictly_increasing_table() -> None:
    table = load_config().detection.detectors["faces.ensemble"].calibration["mediapipe_only"]
    for raw in (0.56, 0.7, 0.75, 0.84, 0.99):
        assert invert_table(table, evaluate_table(table, raw)) == pytest.approx(raw)
    assert invert_table(table, 0.01) == 0.55, "flat before the first point: its start"
    assert invert_table(table, 0.95) is None, "above the table's top"


def test_report_bands_follow_each_kinds_policy() -> None:
    policy = load_config().policy
    empty = feedback_report((), policy)
    assert empty.by_kind == () and empty.regions == 0
    assert score_edges(policy.rule_for(RegionKind.FACE), bins=4) == pytest.approx(
        (0.0, 0.2, 0.275, 0.35, 0.425, 0.5, 1.0)
    )
