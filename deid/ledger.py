"""The ledger: every contribution, image, region, decision and audit event.

SQLAlchemy Core over SQLite (``<workspace>/ledger.db``) by default, or any
SQLAlchemy URL (``postgresql+psycopg://…``). The ledger is private: it holds
contribution ids, raw answers and recognised text, and is never published.

Idempotence lives here: an image is keyed on ``(contribution_id, position,
sha256)``, and a finished image whose staged file is still on disk is not
processed again. Every state change is written together with an audit event
(what, which rule or reviewer, when) in one transaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from deid.errors import LedgerError, TransientError
from deid.ids import new_case_id, new_image_id
from deid.types import (
    MAX_CALIBRATION_CHARS,
    Action,
    Box,
    Case,
    CaseImage,
    Decision,
    ImageRecord,
    Match,
    Region,
    RegionKind,
    ShotType,
    Status,
)

logger = logging.getLogger(__name__)

metadata = sa.MetaData()

NOT_PROCESSED = "not processed yet"
"""The reason an image carries from registration until processing records a result."""

contributions = sa.Table(
    "contributions",
    metadata,
    sa.Column("contribution_id", sa.String(200), primary_key=True),
    sa.Column("case_id", sa.BigInteger, nullable=False, unique=True),
    sa.Column("case_json", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reasons", sa.Text, nullable=False, default="[]"),
    sa.Column("batch", sa.String(200), nullable=False),
    sa.Column("released_in", sa.String(200), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

images = sa.Table(
    "images",
    metadata,
    sa.Column("image_id", sa.String(64), primary_key=True),
    sa.Column("contribution_id", sa.String(200), sa.ForeignKey("contributions.contribution_id"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("original_name", sa.String(1000), nullable=False),
    sa.Column("shot_type", sa.String(32), nullable=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("action", sa.String(16), nullable=True),
    sa.Column("reasons", sa.Text, nullable=False, default="[]"),
    sa.Column("staged_name", sa.String(200), nullable=True),
    sa.Column("staged_sha256", sa.String(64), nullable=True),
    sa.Column("width", sa.Integer, nullable=True),
    sa.Column("height", sa.Integer, nullable=True),
    sa.Column("format", sa.String(16), nullable=True),
    sa.Column("fingerprints", sa.Text, nullable=True),
    sa.Column("kept_metadata", sa.Text, nullable=True),
    sa.Column("skin_tone", sa.Text, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("contribution_id", "position", "sha256", name="uq_image_content"),
)

regions = sa.Table(
    "regions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("image_id", sa.String(64), sa.ForeignKey("images.image_id"), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("left", sa.Integer, nullable=False),
    sa.Column("top", sa.Integer, nullable=False),
    sa.Column("right", sa.Integer, nullable=False),
    sa.Column("bottom", sa.Integer, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
    # Added after the first ledgers were written: nullable, and added to older databases on open.
    sa.Column("calibration", sa.String(MAX_CALIBRATION_CHARS), nullable=True),
    sa.Column("raw_score", sa.Float, nullable=True),
)
_ADDED_REGION_COLUMNS = ("calibration", "raw_score")

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("image_id", sa.String(64), sa.ForeignKey("images.image_id"), nullable=False, index=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("regions", sa.Text, nullable=False),
    sa.Column("crop", sa.Text, nullable=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

matches = sa.Table(
    "matches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("image_id", sa.String(64), sa.ForeignKey("images.image_id"), nullable=False, index=True),
    sa.Column("reference", sa.String(1000), nullable=False),
    sa.Column("distance", sa.Float, nullable=False),
    sa.Column("method", sa.String(64), nullable=False),
    sa.Column("verified", sa.Boolean, nullable=False),
    sa.Column("verdict", sa.String(32), nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False, index=True),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("detail", sa.Text, nullable=False, default="{}"),
)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One line of the audit trail."""

    at: datetime
    subject: str
    event: str
    actor: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordedDecision:
    """A decision as the ledger keeps it: what was decided, by whom (a rule or ``review:<name>``), when."""

    decision: Decision
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class StoredMatch:
    """A match of an image with the verdict it led to."""

    match: Match
    verdict: str


@dataclass(frozen=True, slots=True)
class ImageDetails:
    """Everything stored about one image (private: for review, the gate and reports)."""

    record: ImageRecord
    width: int | None
    height: int | None
    image_format: str | None
    staged_sha256: str | None
    regions: tuple[Region, ...]
    matches: tuple[StoredMatch, ...]
    skin_tone: Mapping[str, object] | None
    kept_metadata: Mapping[str, object] | None
    updated_at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@contextmanager
def transaction(engine: Engine, *, what: str = "ledger write") -> Iterator[Connection]:
    """One transaction on the ledger's database, for the ledger and every store that shares its engine.

    A busy or unreachable database is a :class:`TransientError` (retried);
    anything else a :class:`LedgerError`. Either way the message carries the
    driver's first line only, never the statement or its bound values (a
    contribution's answers and free text).

    Raises
    ------
    TransientError
        If the database is locked or cannot be reached.
    LedgerError
        If the statement fails for any other reason.
    """
    try:
        with engine.begin() as connection:
            yield connection
    except OperationalError as error:
        if "locked" in str(error).lower() or "could not connect" in str(error).lower():
            raise TransientError(f"ledger busy: {_describe(error)}", hint="retry") from error
        raise LedgerError(f"{what} failed: {_describe(error)}") from error
    except SQLAlchemyError as error:
        raise LedgerError(f"{what} failed: {_describe(error)}") from error


def ledger_url(workspace: str | Path, url: str = "") -> str:
    """The SQLAlchemy URL to use: ``url`` when set, else SQLite in the workspace."""
    return url or f"sqlite:///{Path(workspace).resolve() / 'ledger.db'}"


class Ledger:
    """Read and write the ledger.

    Parameters
    ----------
    url
        A SQLAlchemy URL; see :func:`ledger_url`.

    Raises
    ------
    LedgerError
        If the database cannot be opened or its tables created.

    Examples
    --------
    >>> ledger = Ledger("sqlite://")
    >>> ledger.contribution_status("nobody") is None
    True
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            connect_args = {"timeout": 30} if url.startswith("sqlite") else {}
            # hide_parameters: a failed statement's bound values (case answers, free text) never reach a message.
            self.engine: Engine = sa.create_engine(url, connect_args=connect_args, future=True, hide_parameters=True)
            if url.startswith("sqlite"):
                sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            metadata.create_all(self.engine)
            _add_missing_columns(self.engine, regions, _ADDED_REGION_COLUMNS)
        except SQLAlchemyError as error:
            raise LedgerError(
                f"cannot open ledger at {_redact_url(url)}: {_describe(error)}", hint="check [ledger] url"
            ) from error

    def _begin(self) -> AbstractContextManager[Connection]:
        return transaction(self.engine)

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()

    # contributions ---------------------------------------------------------

    def register_contribution(self, case: Case, *, batch: str) -> int:
        """Record a contribution (once) and return its stable release ``case_id``.

        The ``case_id`` is a random signed 64-bit integer (:func:`deid.ids.new_case_id`) drawn the first
        time a contribution is seen, so it is stable across releases and
        unlinkable to the contribution id.
        """
        with self._begin() as connection:
            row = connection.execute(
                sa.select(contributions.c.case_id).where(contributions.c.contribution_id == case.contribution_id)
            ).first()
            if row is not None:
                stored = _dumps(_case_to_json(case))
                changed = connection.execute(
                    contributions.update()
                    .where(contributions.c.contribution_id == case.contribution_id, contributions.c.case_json != stored)
                    .values(case_json=stored, updated_at=_now())
                ).rowcount
                if changed:
                    self._event(connection, case.contribution_id, "contribution_updated", "ingest", {"batch": batch})
                return int(row.case_id)
            case_id = new_case_id()
            connection.execute(
                contributions.insert().values(
                    contribution_id=case.contribution_id,
                    case_id=case_id,
                    case_json=_dumps(_case_to_json(case)),
                    status=Status.OK,
                    reasons="[]",
                    batch=batch,
                    updated_at=_now(),
                )
            )
            self._event(connection, case.contribution_id, "contribution_registered", "ingest", {"batch": batch})
            return case_id

    def register_rejected_row(
        self, subject: str, *, batch: str, reasons: Sequence[str], detail: dict[str, Any]
    ) -> None:
        """Hold a ``cases.csv`` row that could not be parsed, under ``subject`` (``<batch>/row-<n>``).

        It gets a contribution entry with status ``held`` so it is counted,
        listed for review and never silently dropped; rerunning updates it.
        """
        with self._begin() as connection:
            exists = connection.execute(
                sa.select(contributions.c.contribution_id).where(contributions.c.contribution_id == subject)
            ).first()
            values = {
                "case_json": _dumps(detail),
                "status": Status.HELD,
                "reasons": _dumps(list(reasons)),
                "batch": batch,
                "updated_at": _now(),
            }
            if exists is None:
                connection.execute(
                    contributions.insert().values(contribution_id=subject, case_id=new_case_id(), **values)
                )
            else:
                connection.execute(
                    contributions.update().where(contributions.c.contribution_id == subject).values(**values)
                )
            self._event(connection, subject, "row_rejected", "ingest", {"reasons": list(reasons)})

    def set_contribution_status(
        self, contribution_id: str, outcome_status: Status, reasons: Sequence[str], *, actor: str
    ) -> None:
        """Set a contribution's status (held for under-age, suppressed, …) with an audit event."""
        with self._begin() as connection:
            connection.execute(
                contributions.update()
                .where(contributions.c.contribution_id == contribution_id)
                .values(status=outcome_status, reasons=_dumps(list(reasons)), updated_at=_now())
            )
            self._event(
                connection, contribution_id, f"contribution_{outcome_status}", actor, {"reasons": list(reasons)}
            )

    def contribution_status(self, contribution_id: str) -> tuple[Status, tuple[str, ...]] | None:
        """A contribution's status and reasons, or ``None`` if it is not in the ledger."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(contributions.c.status, contributions.c.reasons).where(
                    contributions.c.contribution_id == contribution_id
                )
            ).first()
        return None if row is None else (Status(row.status), tuple(json.loads(row.reasons)))

    def cases(self, contribution_ids: Sequence[str] | None = None) -> dict[str, Case]:
        """The stored case of each contribution (all, or those named), in the order given or by id.

        Rejected rows (held under ``<batch>/row-<n>``) have no case and are not returned.
        """
        query = sa.select(contributions.c.contribution_id, contributions.c.case_json)
        if contribution_ids is not None:
            query = query.where(contributions.c.contribution_id.in_(list(contribution_ids)))
        with self.engine.connect() as connection:
            rows = connection.execute(query.order_by(contributions.c.contribution_id)).all()
        found: dict[str, Case] = {}
        for row in rows:
            data = json.loads(row.case_json)
            if isinstance(data, dict) and "submitted_at" in data and "images" in data:
                found[row.contribution_id] = _case_from_json(data)
        if contribution_ids is None:
            return found
        return {cid: found[cid] for cid in contribution_ids if cid in found}

    def contribution_statuses(self) -> dict[str, tuple[Status, tuple[str, ...]]]:
        """Every contribution's status and reasons (rejected rows included), in one query."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(contributions.c.contribution_id, contributions.c.status, contributions.c.reasons)
            ).all()
        return {row.contribution_id: (Status(row.status), tuple(json.loads(row.reasons))) for row in rows}

    def case_ids(self) -> dict[str, int]:
        """Every contribution id with its release ``case_id``."""
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(contributions.c.contribution_id, contributions.c.case_id)).all()
        return {row.contribution_id: int(row.case_id) for row in rows}

    # images ----------------------------------------------------------------

    def find_image(self, contribution_id: str, position: int, sha256: str) -> ImageRecord | None:
        """The record for this exact content at this place, or ``None``."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(images).where(
                    images.c.contribution_id == contribution_id,
                    images.c.position == position,
                    images.c.sha256 == sha256,
                )
            ).first()
        return None if row is None else _image_record(row)

    def register_image(
        self,
        *,
        contribution_id: str,
        position: int,
        original_name: str,
        shot_type: str | None,
        sha256: str,
    ) -> ImageRecord:
        """Record an incoming image (once) under a new random opaque id; return its record."""
        existing = self.find_image(contribution_id, position, sha256)
        if existing is not None:
            return existing
        image_id = new_image_id()
        with self._begin() as connection:
            connection.execute(
                images.insert().values(
                    image_id=image_id,
                    contribution_id=contribution_id,
                    position=position,
                    original_name=original_name,
                    shot_type=shot_type,
                    sha256=sha256,
                    status=Status.HELD,
                    reasons=_dumps([NOT_PROCESSED]),
                    updated_at=_now(),
                )
            )
            self._event(
                connection,
                image_id,
                "image_registered",
                "ingest",
                {"contribution_id": contribution_id, "sha256": sha256},
            )
        return ImageRecord(
            image_id, contribution_id, sha256, original_name, Status.HELD, reasons=(NOT_PROCESSED,), shot_type=shot_type
        )

    def record_result(
        self,
        image_id: str,
        *,
        status: Status,
        reasons: Sequence[str],
        actor: str,
        decision: Decision | None = None,
        found: Sequence[Region] = (),
        staged_name: str | None = None,
        staged_sha256: str | None = None,
        width: int | None = None,
        height: int | None = None,
        image_format: str | None = None,
        fingerprints: dict[str, Any] | None = None,
        kept_metadata: dict[str, Any] | None = None,
        skin_tone: dict[str, Any] | None = None,
    ) -> None:
        """Store what processing an image found and decided, replacing earlier regions."""
        with self._begin() as connection:
            connection.execute(regions.delete().where(regions.c.image_id == image_id))
            if found:
                connection.execute(
                    regions.insert(),
                    [
                        {
                            "image_id": image_id,
                            "kind": str(r.kind),
                            "left": r.box.left,
                            "top": r.box.top,
                            "right": r.box.right,
                            "bottom": r.box.bottom,
                            "score": float(r.score),
                            "source": r.source,
                            "note": r.note,
                            "calibration": r.calibration,
                            "raw_score": None if r.raw_score is None else float(r.raw_score),
                        }
                        for r in found
                    ],
                )
            if decision is not None:
                coded = decision.to_json()
                connection.execute(
                    decisions.insert().values(
                        image_id=image_id,
                        action=decision.action,
                        reasons=_dumps(coded["reasons"]),
                        regions=_dumps(coded["regions"]),
                        crop=_dumps(coded["crop"]) if decision.crop else None,
                        actor=actor,
                        at=_now(),
                    )
                )
            values: dict[str, Any] = {
                "status": status,
                "action": decision.action if decision else None,
                "reasons": _dumps(list(reasons)),
                "staged_name": staged_name,
                "staged_sha256": staged_sha256,
                "updated_at": _now(),
            }
            optional = {
                "width": width,
                "height": height,
                "format": image_format,
                "fingerprints": _dumps(fingerprints) if fingerprints is not None else None,
                "kept_metadata": _dumps(kept_metadata) if kept_metadata is not None else None,
                "skin_tone": _dumps(skin_tone) if skin_tone is not None else None,
            }
            values.update({k: v for k, v in optional.items() if v is not None})
            connection.execute(images.update().where(images.c.image_id == image_id).values(**values))
            self._event(
                connection,
                image_id,
                f"image_{status}",
                actor,
                {"action": values["action"], "reasons": list(reasons), "regions": len(found)},
            )

    def set_image_status(self, image_id: str, status: Status, reasons: Sequence[str], *, actor: str) -> None:
        """Change an image's status (for example to excluded as a duplicate) with an audit event."""
        with self._begin() as connection:
            connection.execute(
                images.update()
                .where(images.c.image_id == image_id)
                .values(status=status, reasons=_dumps(list(reasons)), updated_at=_now())
            )
            self._event(connection, image_id, f"image_{status}", actor, {"reasons": list(reasons)})

    def record_matches(self, image_id: str, found: Sequence[tuple[Match, str]], *, actor: str) -> None:
        """Store the matches of an image with their verdicts, replacing earlier ones."""
        with self._begin() as connection:
            connection.execute(matches.delete().where(matches.c.image_id == image_id))
            if found:
                connection.execute(
                    matches.insert(),
                    [
                        {
                            "image_id": image_id,
                            "reference": m.reference,
                            "distance": float(m.distance),
                            "method": m.method,
                            "verified": bool(m.verified),
                            "verdict": verdict,
                        }
                        for m, verdict in found
                    ],
                )
            self._event(connection, image_id, "matches_recorded", actor, {"count": len(found)})

    def image(self, image_id: str) -> ImageRecord:
        """One image's record.

        Raises
        ------
        LedgerError
            If there is no such image.
        """
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(images).where(images.c.image_id == image_id)).first()
        if row is None:
            raise LedgerError("no such image in the ledger", image_id=image_id)
        return _image_record(row)

    def images(self, *, status: Status | None = None, contribution_id: str | None = None) -> list[ImageRecord]:
        """Image records, optionally filtered, in contribution then position order."""
        query = sa.select(images).order_by(images.c.contribution_id, images.c.position)
        if status is not None:
            query = query.where(images.c.status == status)
        if contribution_id is not None:
            query = query.where(images.c.contribution_id == contribution_id)
        with self.engine.connect() as connection:
            return [_image_record(row) for row in connection.execute(query)]

    def images_of(self, contribution_ids: Sequence[str]) -> list[ImageRecord]:
        """The image records of these contributions, in one query, in contribution then position order."""
        if not contribution_ids:
            return []
        query = (
            sa.select(images)
            .where(images.c.contribution_id.in_(list(contribution_ids)))
            .order_by(images.c.contribution_id, images.c.position)
        )
        with self.engine.connect() as connection:
            return [_image_record(row) for row in connection.execute(query)]

    def image_details(self, image_id: str) -> ImageDetails:
        """Everything stored about one image (private; for review and reports).

        Raises
        ------
        LedgerError
            If there is no such image.
        """
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(images).where(images.c.image_id == image_id)).first()
            if row is None:
                raise LedgerError("no such image in the ledger", image_id=image_id)
            found = connection.execute(
                sa.select(regions).where(regions.c.image_id == image_id).order_by(regions.c.id)
            ).all()
            matched = connection.execute(
                sa.select(matches).where(matches.c.image_id == image_id).order_by(matches.c.id)
            ).all()
        return ImageDetails(
            record=_image_record(row),
            width=row.width,
            height=row.height,
            image_format=row.format,
            staged_sha256=row.staged_sha256,
            regions=tuple(
                Region(
                    RegionKind(r.kind),
                    Box(r.left, r.top, r.right, r.bottom),
                    r.score,
                    r.source,
                    r.note,
                    r.calibration,
                    None if r.raw_score is None else float(r.raw_score),
                )
                for r in found
            ),
            matches=tuple(
                StoredMatch(Match(m.reference, float(m.distance), m.method, bool(m.verified)), m.verdict)
                for m in matched
            ),
            skin_tone=json.loads(row.skin_tone) if row.skin_tone else None,
            kept_metadata=json.loads(row.kept_metadata) if row.kept_metadata else None,
            updated_at=row.updated_at,
        )

    def latest_decision(self, image_id: str) -> RecordedDecision | None:
        """The most recent decision on an image, with its actor and time, or ``None``."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(decisions).where(decisions.c.image_id == image_id).order_by(decisions.c.id.desc()).limit(1)
            ).first()
        return None if row is None else _recorded_decision(row)

    def latest_decisions(self, image_ids: Sequence[str]) -> dict[str, RecordedDecision]:
        """:meth:`latest_decision` for many images in one query (those with none are absent)."""
        if not image_ids:
            return {}
        newest = (
            sa.select(sa.func.max(decisions.c.id))
            .where(decisions.c.image_id.in_(list(image_ids)))
            .group_by(decisions.c.image_id)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(decisions).where(decisions.c.id.in_(newest))).all()
        return {row.image_id: _recorded_decision(row) for row in rows}

    def fingerprints_of(self, image_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Stored fingerprints (JSON) of these images, for those that have any; one query."""
        if not image_ids:
            return {}
        query = sa.select(images.c.image_id, images.c.fingerprints).where(
            images.c.image_id.in_(list(image_ids)), images.c.fingerprints.is_not(None)
        )
        with self.engine.connect() as connection:
            return {row.image_id: json.loads(row.fingerprints) for row in connection.execute(query)}

    def regions_of(self, image_id: str) -> list[Region]:
        """Regions the detectors found on an image."""
        return list(self.image_details(image_id).regions)

    # audit -----------------------------------------------------------------

    def add_event(self, subject: str, event: str, *, actor: str, detail: dict[str, Any] | None = None) -> None:
        """Append an audit event."""
        with self._begin() as connection:
            self._event(connection, subject, event, actor, detail or {})

    def events(self, subject: str | None = None) -> list[AuditEvent]:
        """The audit trail, oldest first, optionally for one subject."""
        query = sa.select(events).order_by(events.c.id)
        if subject is not None:
            query = query.where(events.c.subject == subject)
        with self.engine.connect() as connection:
            return [
                AuditEvent(row.at, row.subject, row.event, row.actor, json.loads(row.detail))
                for row in connection.execute(query)
            ]

    @staticmethod
    def _event(connection: Connection, subject: str, event: str, actor: str, detail: dict[str, Any]) -> None:
        connection.execute(
            events.insert().values(at=_now(), subject=subject, event=event, actor=actor, detail=_dumps(detail))
        )


def _image_record(row: Any) -> ImageRecord:
    return ImageRecord(
        image_id=row.image_id,
        contribution_id=row.contribution_id,
        sha256=row.sha256,
        original_name=row.original_name,
        status=Status(row.status),
        action=Action(row.action) if row.action else None,
        staged_name=row.staged_name,
        reasons=tuple(json.loads(row.reasons or "[]")),
        shot_type=row.shot_type,
    )


def _recorded_decision(row: Any) -> RecordedDecision:
    decision = Decision.from_json(
        {
            "action": row.action,
            "reasons": json.loads(row.reasons),
            "regions": json.loads(row.regions),
            "crop": json.loads(row.crop) if row.crop else None,
        }
    )
    return RecordedDecision(decision, row.actor, row.at)


def _case_from_json(data: Mapping[str, Any]) -> Case:
    """Read :func:`_case_to_json`'s form back into a :class:`Case`."""
    sets = {name: frozenset(data.get(name) or ()) for name in ("race_ethnicity", "body_parts", "symptoms", "textures")}
    return Case(
        contribution_id=str(data["contribution_id"]),
        submitted_at=str(data["submitted_at"]),
        age=data.get("age"),
        sex=data.get("sex"),
        skin_type=data.get("skin_type"),
        duration=data.get("duration"),
        related_category=data.get("related_category"),
        description=str(data.get("description") or ""),
        images=tuple(
            CaseImage(str(image["file"]), ShotType(image["shot_type"]) if image.get("shot_type") else None)
            for image in data.get("images") or ()
        ),
        **sets,
    )


def _case_to_json(case: Case) -> dict[str, Any]:
    data = asdict(case)
    for key, value in data.items():
        if isinstance(value, frozenset):
            data[key] = sorted(value)
    data["images"] = [{"file": image.file, "shot_type": image.shot_type} for image in case.images]
    return data


def _add_missing_columns(engine: Engine, table: sa.Table, names: Sequence[str]) -> None:
    """Add the nullable ``names`` of ``table`` that a database written by an older deid lacks.

    ``create_all`` creates missing tables but never alters one, so a ledger
    from before a column existed gets it here; old rows read it as ``NULL``.
    Another process opening the same ledger may add a column first: a failed
    ``ALTER`` is an error only if the column is still missing afterwards.

    Raises
    ------
    SQLAlchemyError
        If a column is missing and cannot be added.
    """
    present = {column["name"] for column in sa.inspect(engine).get_columns(table.name)}
    for name in names:
        if name in present:
            continue
        column = table.c[name]
        assert column.nullable, "only nullable columns can be added to rows that exist"
        kind = column.type.compile(dialect=engine.dialect)
        preparer = engine.dialect.identifier_preparer
        statement = f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {preparer.quote(name)} {kind}"
        try:
            with engine.begin() as connection:
                connection.execute(sa.text(statement))
        except SQLAlchemyError:
            if name not in {c["name"] for c in sa.inspect(engine).get_columns(table.name)}:
                raise
        else:
            logger.info("ledger: added column %s.%s", table.name, name)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _describe(error: SQLAlchemyError) -> str:
    """The database's own words for an error, without the statement or its bound values.

    SQLAlchemy's message carries the SQL and, unless hidden, the parameters:
    a contribution's answers and free text. Only the driver's first line is kept.
    """
    original = getattr(error, "orig", None)
    text = str(original) if original is not None else type(error).__name__
    return text.splitlines()[0][:300] if text else type(error).__name__


def _redact_url(url: str) -> str:
    """Hide a password in a URL before it goes into a message."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable url>"
