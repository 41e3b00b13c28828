"""The review tables, on the ledger's engine (SQLite or PostgreSQL), with their own metadata.

- ``review_users``: name, role, scrypt password hash (salted, ``scrypt$n$r$p$salt$hash``).
- ``review_sessions``: the SHA-256 of each session token (never the token), its CSRF token and expiry.
- ``review_signin_failures``: failed sign-ins per name and per address, for rate limiting.
- ``review_items``: the queue, one row per held image or case, with a ``version`` for optimistic locking.
- ``review_events``: the append-only audit trail of every view, edit, decision, conflict and application:
  who, when (server time), the boxes before and after, and the model's boxes beside them.

Every change to an item and its audit event are written in one transaction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from deid.errors import LedgerError, ReviewConflict, ReviewNotFound
from deid.ledger import transaction
from deid.review.queue import (
    ItemState,
    QueueCandidate,
    QueueFilter,
    QueuePage,
    ReviewDecision,
    ReviewItem,
    ReviewRegion,
    Route,
)
from deid.types import RegionKind

logger = logging.getLogger(__name__)

metadata = sa.MetaData()

ROLES = ("reviewer", "admin")

users = sa.Table(
    "review_users",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(300), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

sessions = sa.Table(
    "review_sessions",
    metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("user_name", sa.String(64), sa.ForeignKey("review_users.name"), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

signin_failures = sa.Table(
    "review_signin_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(200), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

items = sa.Table(
    "review_items",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("item_id", sa.String(32), nullable=False, unique=True),
    sa.Column("subject_type", sa.String(16), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("route", sa.String(16), nullable=False),
    sa.Column("audit", sa.Boolean, nullable=False, default=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason_code", sa.String(64), nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("contribution_id", sa.String(200), nullable=False),
    sa.Column("kinds", sa.String(200), nullable=False),  # ",face,text," so a LIKE finds one kind
    sa.Column("max_score", sa.Float, nullable=False),
    sa.Column("body_parts", sa.Text, nullable=False),  # ",arm,leg,"
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("regions", sa.Text, nullable=False),
    sa.Column("model_regions", sa.Text, nullable=False),
    sa.Column("comment", sa.Text, nullable=False, default=""),
    sa.Column("decision", sa.Text, nullable=True),
    sa.Column("decided_by", sa.String(64), nullable=True),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("subject_type", "subject", name="uq_review_subject"),
    sa.Index("ix_review_state_seq", "state", "seq"),
    sa.Index("ix_review_state_reason", "state", "reason_code"),  # counts by reason from the index alone
    sa.Index("ix_review_reason_state_seq", "reason_code", "state", "seq"),
)

events = sa.Table(
    "review_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("item_id", sa.String(32), nullable=False, index=True),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("before", sa.Text, nullable=True),
    sa.Column("after", sa.Text, nullable=True),
    sa.Column("model", sa.Text, nullable=True),
    sa.Column("detail", sa.Text, nullable=False, default="{}"),
)


@dataclass(frozen=True, slots=True)
class Reviewer:
    """A signed-in person."""

    name: str
    role: str


@dataclass(frozen=True, slots=True)
class Session:
    """A live session: who, its CSRF token, and when it ends."""

    reviewer: Reviewer
    csrf: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ReviewEvent:
    """One line of the review audit trail (boxes as JSON region lists)."""

    id: int
    at: datetime
    item_id: str
    subject: str
    event: str
    actor: str
    version: int | None
    before: list[Any] | None
    after: list[Any] | None
    model: list[Any] | None
    detail: dict[str, Any]

    def to_json(self) -> dict[str, object]:
        """JSON form for ``deid review export --jsonl``."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "item_id": self.item_id,
            "subject": self.subject,
            "event": self.event,
            "actor": self.actor,
            "version": self.version,
            "before": self.before,
            "after": self.after,
            "model": self.model,
            "detail": self.detail,
        }


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time stored here is UTC."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _regions_json(regions: Sequence[ReviewRegion]) -> list[dict[str, object]]:
    return [region.to_json() for region in regions]


def hash_password(password: str, *, n: int) -> str:
    """A salted scrypt hash: ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1, maxmem=2**27, dklen=32)
    encode = base64.b64encode
    return f"scrypt${n}$8$1${encode(salt).decode()}${encode(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    """True when ``password`` matches a hash from :func:`hash_password` (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), maxmem=2**27, dklen=32
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


class ReviewStore:
    """The review queue's tables on an engine (usually ``ledger.engine``).

    Parameters
    ----------
    engine
        A SQLAlchemy engine; the tables are created on it if absent.

    Raises
    ------
    LedgerError
        If the tables cannot be created.

    Examples
    --------
    >>> store = ReviewStore(sa.create_engine("sqlite://"))
    >>> store.counts_by_reason()
    {}
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        try:
            metadata.create_all(engine)
        except SQLAlchemyError as error:
            raise LedgerError(f"cannot create the review tables: {type(error).__name__}") from error

    def _begin(self) -> AbstractContextManager[Connection]:
        return transaction(self.engine, what="review write")

    # users and sessions ----------------------------------------------------

    def add_user(self, name: str, *, role: str = "reviewer", scrypt_n: int = 16384) -> str:
        """Create a reviewer (or reset their password); return a new one-time password to hand over.

        Raises
        ------
        ValueError
            If the name is not 1-64 letters, digits, ``.``, ``-`` or ``_``, or the role is unknown.
        """
        if not (0 < len(name) <= 64 and all(c.isalnum() or c in "._-" for c in name)):
            raise ValueError("a reviewer name is 1-64 letters, digits, '.', '-' or '_'")
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        password = secrets.token_urlsafe(12)
        hashed = hash_password(password, n=scrypt_n)
        with self._begin() as connection:
            exists = connection.execute(sa.select(users.c.name).where(users.c.name == name)).first()
            if exists is None:
                connection.execute(users.insert().values(name=name, role=role, password_hash=hashed, created_at=_now()))
            else:
                connection.execute(users.update().where(users.c.name == name).values(role=role, password_hash=hashed))
                connection.execute(sessions.delete().where(sessions.c.user_name == name))
        logger.info("review user %s set (role %s)", name, role)
        return password

    def authenticate(self, name: str, password: str) -> Reviewer | None:
        """The reviewer when the password matches, else ``None`` (same work either way)."""
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(users).where(users.c.name == name[:64])).first()
        stored = row.password_hash if row is not None else _DUMMY_HASH
        matched = check_password(password, stored)
        return Reviewer(row.name, row.role) if row is not None and matched else None

    def create_session(self, reviewer: Reviewer, *, hours: float) -> tuple[str, Session]:
        """Start a session; return its secret token (for the cookie) and the session."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires = _now() + timedelta(hours=hours)
        with self._begin() as connection:
            connection.execute(sessions.delete().where(sessions.c.expires_at < _now()))
            connection.execute(
                sessions.insert().values(
                    token_sha256=hashlib.sha256(token.encode()).hexdigest(),
                    user_name=reviewer.name,
                    csrf=csrf,
                    created_at=_now(),
                    expires_at=expires,
                )
            )
        return token, Session(reviewer, csrf, expires)

    def session(self, token: str) -> Session | None:
        """The live session of a token, or ``None`` (unknown or expired)."""
        if not token or len(token) > 200:
            return None
        digest = hashlib.sha256(token.encode()).hexdigest()
        query = (
            sa.select(sessions.c.csrf, sessions.c.expires_at, users.c.name, users.c.role)
            .join(users, users.c.name == sessions.c.user_name)
            .where(sessions.c.token_sha256 == digest)
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        expires = _aware(row.expires_at)
        if expires is None or expires <= _now():
            return None
        return Session(Reviewer(row.name, row.role), row.csrf, expires)

    def end_session(self, token: str) -> None:
        """Sign out: forget the session."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self._begin() as connection:
            connection.execute(sessions.delete().where(sessions.c.token_sha256 == digest))

    def record_signin_failure(self, keys: Sequence[str]) -> None:
        """Count a failed sign-in against each key (``name:<n>``, ``addr:<ip>``)."""
        with self._begin() as connection:
            connection.execute(signin_failures.insert(), [{"key": key[:200], "at": _now()} for key in keys])

    def signin_failures(self, key: str, *, window_s: float) -> int:
        """Failed sign-ins against ``key`` within the last ``window_s`` seconds."""
        since = _now() - timedelta(seconds=window_s)
        query = sa.select(sa.func.count()).where(signin_failures.c.key == key[:200], signin_failures.c.at >= since)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def clear_signin_failures(self, keys: Sequence[str]) -> None:
        """Forget failures after a successful sign-in."""
        with self._begin() as connection:
            connection.execute(signin_failures.delete().where(signin_failures.c.key.in_([k[:200] for k in keys])))

    # items -----------------------------------------------------------------

    def add_items(self, candidates: Sequence[QueueCandidate]) -> int:
        """Queue candidates not queued yet; refresh the reasons of pending ones; return how many were added.

        An item already decided stays decided (a rerun never reopens a decision).
        """
        added = 0
        with self._begin() as connection:
            existing = {
                (row.subject_type, row.subject): row
                for row in connection.execute(sa.select(items.c.subject_type, items.c.subject, items.c.state))
            }
            fresh = []
            for candidate in candidates:
                row = existing.get((candidate.subject_type, candidate.subject))
                if row is None:
                    fresh.append(_item_values(candidate))
                elif row.state == ItemState.PENDING:
                    connection.execute(
                        items.update()
                        .where(items.c.subject_type == candidate.subject_type, items.c.subject == candidate.subject)
                        .values(reasons=_dumps(list(candidate.reasons)), reason_code=candidate.reason_code)
                    )
            if fresh:
                connection.execute(items.insert(), fresh)
                connection.execute(
                    events.insert(),
                    [
                        {
                            "at": _now(),
                            "item_id": v["item_id"],
                            "subject": v["subject"],
                            "event": "queued",
                            "actor": "queue",
                            "version": 1,
                            "model": v["model_regions"],
                            "detail": _dumps(
                                {"route": v["route"], "reason_code": v["reason_code"], "audit": v["audit"]}
                            ),
                        }
                        for v in fresh
                    ],
                )
                added = len(fresh)
        return added

    def item(self, item_id: str) -> ReviewItem:
        """One item by its id.

        Raises
        ------
        ReviewNotFound
            If no item has this id.
        """
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(items).where(items.c.item_id == item_id)).first()
        if row is None:
            raise ReviewNotFound("no such review item")
        return _item(row)

    def item_for(self, subject_type: str, subject: str) -> ReviewItem | None:
        """The item of an image or case, if it is queued."""
        query = sa.select(items).where(items.c.subject_type == subject_type, items.c.subject == subject)
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else _item(row)

    def list_items(
        self, where: QueueFilter, *, after: int = 0, limit: int = 50, newest_first: bool = False
    ) -> QueuePage:
        """One page of items matching ``where``, keyset-paginated on the queue order (``seq``)."""
        query = sa.select(items).where(*_conditions(where))
        if newest_first:
            query = query.where(items.c.seq < after) if after else query
            query = query.order_by(items.c.seq.desc())
        else:
            query = query.where(items.c.seq > after).order_by(items.c.seq)
        with self.engine.connect() as connection:
            rows = connection.execute(query.limit(limit + 1)).all()
        found = tuple(_item(row) for row in rows[:limit])
        return QueuePage(found, found[-1].seq if len(rows) > limit and found else None)

    def neighbours(self, item: ReviewItem, where: QueueFilter) -> tuple[str | None, str | None]:
        """The ids of the items before and after ``item`` in the filtered queue."""
        conditions = _conditions(where)
        previous = sa.select(items.c.item_id).where(*conditions, items.c.seq < item.seq).order_by(items.c.seq.desc())
        following = sa.select(items.c.item_id).where(*conditions, items.c.seq > item.seq).order_by(items.c.seq)
        with self.engine.connect() as connection:
            before = connection.execute(previous.limit(1)).scalar()
            after = connection.execute(following.limit(1)).scalar()
        return before, after

    def counts_by_reason(self, state: ItemState = ItemState.PENDING) -> dict[str, int]:
        """How many items of ``state`` carry each reason code."""
        query = (
            sa.select(items.c.reason_code, sa.func.count())
            .where(items.c.state == state)
            .group_by(items.c.reason_code)
            .order_by(items.c.reason_code)
        )
        with self.engine.connect() as connection:
            return {code: int(count) for code, count in connection.execute(query)}

    def _locked_update(
        self, connection: Connection, item: ReviewItem, version: int, actor: str, values: dict[str, Any]
    ) -> None:
        """Write ``values`` only if nobody changed the item since ``version``; else raise naming who did."""
        done = connection.execute(
            items.update()
            .where(items.c.item_id == item.item_id, items.c.version == version, items.c.state == ItemState.PENDING)
            .values(version=items.c.version + 1, updated_at=_now(), **values)
        ).rowcount
        if done != 1:
            raise ReviewConflict("stale")

    def _conflict(self, item_id: str, version: int, actor: str, attempted: str) -> ReviewConflict:
        """Record a refused write and build the error naming who changed the item."""
        current = self.item(item_id)
        who = current.decided_by or self._last_editor(item_id) or "someone"
        when = current.decided_at.isoformat(timespec="seconds") if current.decided_at else ""
        what = (
            f"{current.state} by {who}" + (f" at {when}" if when else "") if current.decided_by else f"edited by {who}"
        )
        with self._begin() as connection:
            _event(
                connection,
                current,
                "conflict",
                actor,
                version=version,
                detail={
                    "attempted": attempted,
                    "current_version": current.version,
                    "state": str(current.state),
                    "decided_by": current.decided_by,
                },
            )
        logger.info("review conflict on item %s: %s lost to %s", item_id, actor, who)
        return ReviewConflict(
            f"this item was already {what} (version {current.version}, you had {version})",
            hint="reload the item to see the current decision",
        )

    def _last_editor(self, item_id: str) -> str | None:
        query = (
            sa.select(events.c.actor)
            .where(events.c.item_id == item_id, events.c.event.in_(["boxes_edited", "approved", "excluded"]))
            .order_by(events.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as connection:
            found = connection.execute(query).scalar()
        return str(found) if found is not None else None

    def edit_regions(self, item_id: str, version: int, regions: Sequence[ReviewRegion], *, actor: str) -> ReviewItem:
        """Replace an item's working boxes (drawn, moved, resized, deleted, dismissed, switched).

        Raises
        ------
        ReviewNotFound
            If there is no such item.
        ReviewConflict
            If the item changed since ``version`` or is already decided.
        """
        item = self.item(item_id)
        try:
            with self._begin() as connection:
                self._locked_update(connection, item, version, actor, {"regions": _dumps(_regions_json(regions))})
                _event(
                    connection,
                    item,
                    "boxes_edited",
                    actor,
                    version=version + 1,
                    before=_regions_json(item.regions),
                    after=_regions_json(regions),
                )
        except ReviewConflict:
            raise self._conflict(item_id, version, actor, "boxes_edited") from None
        return self.item(item_id)

    def comment(self, item_id: str, version: int, text: str, *, actor: str) -> ReviewItem:
        """Set the reviewer's comment on an item (kept in the ledger, never logged).

        Raises
        ------
        ReviewConflict
            If the item changed since ``version``.
        """
        item = self.item(item_id)
        try:
            with self._begin() as connection:
                self._locked_update(connection, item, version, actor, {"comment": text[:2000]})
                _event(connection, item, "commented", actor, version=version + 1, detail={"comment": text[:2000]})
        except ReviewConflict:
            raise self._conflict(item_id, version, actor, "commented") from None
        return self.item(item_id)

    def decide(self, item_id: str, version: int, decision: ReviewDecision, *, actor: str) -> ReviewItem:
        """Record a decision, once: the first of two concurrent decisions wins, the other gets a conflict.

        Raises
        ------
        ReviewNotFound
            If there is no such item.
        ReviewConflict
            If the item changed since ``version`` or was decided already; the
            message names who decided it. The refused attempt is in the audit trail.
        """
        item = self.item(item_id)
        state = ItemState.APPROVED if decision.verdict == "approve" else ItemState.EXCLUDED
        values = {
            "state": state,
            "decision": _dumps(decision.to_json()),
            "decided_by": actor,
            "decided_at": _now(),
            "regions": _dumps(_regions_json(decision.regions)) if decision.regions else items.c.regions,
        }
        if decision.comment:
            values["comment"] = decision.comment
        try:
            with self._begin() as connection:
                self._locked_update(connection, item, version, actor, values)
                _event(
                    connection,
                    item,
                    str(state),
                    actor,
                    version=version + 1,
                    before=_regions_json(item.regions),
                    after=_regions_json(decision.regions),
                    detail={"view": str(decision.view), "reason": decision.reason, "comment": decision.comment},
                )
        except ReviewConflict:
            raise self._conflict(item_id, version, actor, str(state)) from None
        logger.info("review item %s %s by %s", item_id, state, actor)
        return self.item(item_id)

    def record_view(self, item: ReviewItem, *, actor: str) -> None:
        """Append a ``viewed`` event."""
        with self._begin() as connection:
            _event(connection, item, "viewed", actor, version=item.version)

    def mark_applied(self, item: ReviewItem, *, actor: str, detail: dict[str, Any]) -> None:
        """Record that a decision reached the ledger and the staged folder."""
        with self._begin() as connection:
            connection.execute(items.update().where(items.c.item_id == item.item_id).values(applied_at=_now()))
            _event(connection, item, "applied", actor, version=item.version, detail=detail)

    def decided_unapplied(self) -> list[ReviewItem]:
        """Decided items whose decision has not been applied yet, in decision order."""
        query = (
            sa.select(items)
            .where(items.c.state != ItemState.PENDING, items.c.applied_at.is_(None))
            .order_by(items.c.decided_at, items.c.seq)
        )
        with self.engine.connect() as connection:
            return [_item(row) for row in connection.execute(query)]

    def audit_items(self) -> list[ReviewItem]:
        """Every audit item."""
        with self.engine.connect() as connection:
            return [_item(row) for row in connection.execute(sa.select(items).where(items.c.audit.is_(True)))]

    def events(self, item_id: str | None = None) -> list[ReviewEvent]:
        """The review audit trail, oldest first, optionally for one item."""
        query = sa.select(events).order_by(events.c.id)
        if item_id is not None:
            query = query.where(events.c.item_id == item_id)
        with self.engine.connect() as connection:
            return [_review_event(row) for row in connection.execute(query)]


def _conditions(where: QueueFilter) -> list[Any]:
    conditions: list[Any] = []
    if where.state is not None:
        conditions.append(items.c.state == where.state)
    if where.reason:
        conditions.append(items.c.reason_code == where.reason)
    if where.route is not None:
        conditions.append(items.c.route == where.route)
    if where.kind is not None:
        conditions.append(items.c.kinds.contains(f",{where.kind},", autoescape=True))
    if where.min_score is not None:
        conditions.append(items.c.max_score >= where.min_score)
    if where.max_score is not None:
        conditions.append(items.c.max_score <= where.max_score)
    if where.body_part:
        conditions.append(items.c.body_parts.contains(f",{where.body_part.lower()},", autoescape=True))
    if where.reviewer:
        conditions.append(items.c.decided_by == where.reviewer)
    if where.older_than_hours is not None:
        conditions.append(items.c.created_at <= _now() - timedelta(hours=where.older_than_hours))
    if where.audit is not None:
        conditions.append(items.c.audit.is_(where.audit))
    return conditions


def _item_values(candidate: QueueCandidate) -> dict[str, Any]:
    regions = _dumps(_regions_json(candidate.regions))
    return {
        "item_id": secrets.token_hex(16),
        "subject_type": candidate.subject_type,
        "subject": candidate.subject,
        "route": candidate.route,
        "audit": candidate.audit,
        "state": ItemState.PENDING,
        "reason_code": candidate.reason_code,
        "reasons": _dumps(list(candidate.reasons)),
        "contribution_id": candidate.contribution_id,
        "kinds": "," + ",".join(str(kind) for kind in candidate.kinds) + ",",
        "max_score": float(candidate.max_score),
        "body_parts": "," + ",".join(part.lower() for part in candidate.body_parts) + ",",
        "version": 1,
        "regions": regions,
        "model_regions": regions,
        "comment": "",
        "created_at": _now(),
        "updated_at": _now(),
    }


def _regions(text: str | None) -> tuple[ReviewRegion, ...]:
    return tuple(ReviewRegion.from_json(r) for r in json.loads(text or "[]"))


def _item(row: Any) -> ReviewItem:
    created = _aware(row.created_at)
    assert created is not None  # a NOT NULL column
    return ReviewItem(
        seq=int(row.seq),
        item_id=row.item_id,
        subject_type=row.subject_type,
        subject=row.subject,
        route=Route(row.route),
        audit=bool(row.audit),
        state=ItemState(row.state),
        reason_code=row.reason_code,
        reasons=tuple(json.loads(row.reasons)),
        contribution_id=row.contribution_id,
        kinds=tuple(RegionKind(kind) for kind in row.kinds.strip(",").split(",") if kind),
        max_score=float(row.max_score),
        body_parts=tuple(part for part in row.body_parts.strip(",").split(",") if part),
        version=int(row.version),
        regions=_regions(row.regions),
        model_regions=_regions(row.model_regions),
        comment=row.comment or "",
        decision=ReviewDecision.from_json(json.loads(row.decision)) if row.decision else None,
        decided_by=row.decided_by,
        decided_at=_aware(row.decided_at),
        applied_at=_aware(row.applied_at),
        created_at=created,
    )


def _event(
    connection: Connection,
    item: ReviewItem,
    event: str,
    actor: str,
    *,
    version: int | None = None,
    before: list[Any] | None = None,
    after: list[Any] | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    connection.execute(
        events.insert().values(
            at=_now(),
            item_id=item.item_id,
            subject=item.subject,
            event=event,
            actor=actor,
            version=version,
            before=_dumps(before) if before is not None else None,
            after=_dumps(after) if after is not None else None,
            model=_dumps(_regions_json(item.model_regions)),
            detail=_dumps(detail or {}),
        )
    )


def _review_event(row: Any) -> ReviewEvent:
    at = _aware(row.at)
    assert at is not None  # a NOT NULL column
    return ReviewEvent(
        id=int(row.id),
        at=at,
        item_id=row.item_id,
        subject=row.subject,
        event=row.event,
        actor=row.actor,
        version=row.version,
        before=json.loads(row.before) if row.before else None,
        after=json.loads(row.after) if row.after else None,
        model=json.loads(row.model) if row.model else None,
        detail=json.loads(row.detail or "{}"),
    )


__all__ = ["ROLES", "ReviewEvent", "ReviewStore", "Reviewer", "Session", "check_password", "hash_password"]
