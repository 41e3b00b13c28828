"""``deid review ...``: the same library calls as the page, for scripted use.

Every subcommand takes ``--workspace DIR`` and ``--db URL`` (default: the
workspace's ledger). :func:`add_review_commands` wires them into the main
parser. Lines printed name item ids and reviewers, never contributor text.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path
from typing import Any

from deid.config import Config, load_config
from deid.errors import LedgerError, OutputError, ReviewForbidden
from deid.ledger import Ledger, ledger_url
from deid.review import feedback
from deid.review.queue import (
    ItemState,
    QueueFilter,
    ReviewItem,
    ReviewRegion,
    Verdict,
    audit_report,
    reviewer_decision,
)
from deid.review.store import ROLES, ReviewStore
from deid.workspace import Workspace

CLI_ACTOR_ROLE = "admin"
"""The CLI runs with the operator's own rights: the person at the shell owns the workspace."""


def _emit(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, default=str), flush=True)


def _open_ledger(args: argparse.Namespace, config: Config) -> Ledger:
    """The workspace's ledger; refused when there is none (opening a ledger would create an empty one)."""
    root = Path(args.workspace).resolve()
    if not args.db and not config.ledger.url and not (root / "ledger.db").is_file():
        # A mistyped --workspace must not leave an empty ledger behind, nor review an empty queue.
        raise LedgerError("no ledger in this workspace", path=root, hint="pass the workspace a batch ran in, or --db")
    return Ledger(args.db or ledger_url(root, config.ledger.url))


def _open(args: argparse.Namespace) -> tuple[Workspace, Config, Ledger, ReviewStore]:
    config = load_config(args.config)
    workspace = Workspace(Path(args.workspace).resolve())
    ledger = _open_ledger(args, config)
    return workspace, config, ledger, ReviewStore(ledger.engine)


def _cmd_add_user(args: argparse.Namespace) -> int:
    _, config, _, store = _open(args)
    try:
        password = store.add_user(args.name, role=args.role, scrypt_n=config.review.scrypt_n)
    except ValueError as error:
        raise ReviewForbidden(str(error)) from None
    print(f"user {args.name} ({args.role}); one-time password: {password}")
    print("hand it over in person; it is shown once and stored only as a salted scrypt hash")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from deid.review.apply import sync_queue
    from deid.review.web import create_app, is_loopback

    workspace, config, ledger, store = _open(args)
    host = args.host or config.review.host
    port = args.port or config.review.port
    if not is_loopback(host) and not args.allow_remote:
        raise ReviewForbidden(
            f"refusing to listen on {host}", hint="the page is for this machine; pass --allow-remote behind HTTPS"
        )
    sync_queue(ledger, store, config)
    app = create_app(workspace, config, ledger=ledger, store=store, secure_cookies=args.secure_cookies)
    print(f"review page: http://{host}:{port}/  (sign in with a name from `deid review add-user`)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info")
    return 0


def _cmd_sync(args: argparse.Namespace) -> int:
    from deid.review.apply import sync_queue

    _, config, ledger, store = _open(args)
    _emit({"added": sync_queue(ledger, store, config), "pending": store.counts_by_reason()})
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from deid.review.apply import sync_queue

    _, config, ledger, store = _open(args)
    sync_queue(ledger, store, config)
    state = None if args.state == "all" else ItemState(args.state)
    where = QueueFilter(state=state, reason=args.reason)
    after = 0
    while True:
        page = store.list_items(where, after=after, limit=500)
        for item in page.items:
            if args.json:
                _emit(
                    {
                        "id": item.item_id,
                        "state": str(item.state),
                        "route": str(item.route),
                        "audit": item.audit,
                        "reason_code": item.reason_code,
                        "reasons": list(item.reasons),
                    }
                )
            else:
                print(f"{item.item_id}  {item.state:<8} {item.route:<12} {item.reason_code}")
        if page.next_after is None:
            return 0
        after = page.next_after


def _item(store: ReviewStore, item_id: str) -> ReviewItem:
    """The item, or :class:`~deid.errors.ReviewNotFound` (exit code 2 with a JSON error)."""
    return store.item(item_id)


def _cmd_show(args: argparse.Namespace) -> int:
    _, _, _, store = _open(args)
    item = _item(store, args.id)
    _emit({**item.to_json(), "events": [e.to_json() for e in store.events(item.item_id)]})
    return 0


def _cmd_decide(args: argparse.Namespace) -> int:
    _, config, ledger, store = _open(args)
    item = _item(store, args.id)
    actor = args.reviewer
    regions = None
    if args.boxes is not None:
        try:
            raw = json.loads(args.boxes)
            details = ledger.image_details(item.subject) if item.subject_type == "image" else None
            shape = (details.height, details.width) if details and details.height and details.width else None
            regions = tuple(ReviewRegion.from_json(r, shape=shape, source=f"review:{actor}") for r in raw)
        except (ValueError, TypeError) as error:
            hint = 'a JSON list like [{"kind": "face", "box": [x, y, w, h]}]'
            raise ReviewForbidden(f"--boxes: {error}", hint=hint) from None
    verdict = Verdict.EXCLUDE if args.exclude else Verdict.APPROVE
    try:
        decision = reviewer_decision(
            item,
            verdict,
            view=item.route,
            regions=regions,
            reason=args.exclude or "",
            comment=args.comment or "",
            exclude_reasons=config.review.exclude_reasons,
            role=CLI_ACTOR_ROLE,
        )
    except (PermissionError, ValueError) as error:
        raise ReviewForbidden(str(error)) from None
    decided = store.decide(item.item_id, args.version or item.version, decision, actor=actor)
    _emit({"id": decided.item_id, "state": str(decided.state), "version": decided.version, "decided_by": actor})
    return 0


def _cmd_apply(args: argparse.Namespace) -> int:
    from deid.review.apply import apply_decisions

    workspace, config, ledger, store = _open(args)
    summary = apply_decisions(workspace, ledger, store, config)
    _emit(summary.to_json())
    return 1 if summary.count("failed") else 0


def _cmd_audit_report(args: argparse.Namespace) -> int:
    _, _, _, store = _open(args)
    report = audit_report(store.audit_items())
    if args.json:
        _emit(report.to_json())
        return 0
    print(f"audited images decided: {report.audited} (excluded by the reviewer: {report.excluded})")
    for miss in report.by_kind:
        print(f"  {miss.kind:<15} missed {miss.missed}/{miss.audited}  miss rate {miss.miss_rate:.1%}")
    return 0


def _cmd_feedback(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    ledger = _open_ledger(args, config)
    store = ReviewStore(ledger.engine)
    outcomes = feedback.read_outcomes(store, ledger, config)
    report = feedback.feedback_report(outcomes, config.policy, bins=args.bins)
    proposals = feedback.propose_calibration(outcomes, config, min_count=args.min_count, bins=args.bins)
    written = None
    if args.write_overlay is not None:
        written = _write_overlay(
            args.write_overlay, args.config, feedback.overlay_toml(proposals, written=date.today())
        )
    untabled = feedback.untabled(outcomes)
    if args.json:
        _emit(
            {
                **report.to_json(),
                "min_count": args.min_count,
                "proposals": [proposal.to_json() for proposal in proposals],
                "no_table": untabled,
                "overlay": str(written) if written else None,
            }
        )
        return 0
    for line in report.lines():
        print(line)
    print(f"calibration proposals (a bin needs >= {args.min_count} answers):")
    if not proposals:
        print("  (no reviewed region was scored by a calibration table)")
    for proposal in proposals:
        print(f"  {proposal.summary()}")
    for detector, count in untabled.items():
        print(f"  {detector}: {count} reviewed region(s) scored by no table (option scores or Platt): reported only")
    if written:
        print(f"overlay written to {written}: review it, then copy the tables you accept into deid.toml")
    return 0


def _write_overlay(target: Path, config_path: Path | None, text: str) -> Path:
    """Write the overlay atomically; never over the configuration in use or a file this command did not write.

    Raises
    ------
    OutputError
        If the target is the configuration, another file, or cannot be written.
    """
    path = target.resolve()
    if config_path is not None and path == Path(config_path).resolve():
        raise OutputError(
            "refusing to write the overlay over the configuration in use",
            path=path,
            hint="write it elsewhere, review it, then copy the tables into deid.toml by hand",
        )
    try:
        if path.exists():
            with path.open(encoding="utf-8", errors="replace") as existing:
                first = existing.readline().rstrip("\n")
            if first != feedback.OVERLAY_HEADER:
                raise OutputError(
                    "refusing to overwrite a file this command did not write",
                    path=path,
                    hint="choose a new file name for the overlay",
                )
        partial = path.with_name(f".{path.name}.partial")
        try:
            partial.write_text(text, encoding="utf-8")
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
    except OSError as error:
        raise OutputError(f"cannot write the overlay: {error.strerror or error}", path=path) from error
    return path


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _cmd_export(args: argparse.Namespace) -> int:
    _, _, _, store = _open(args)
    if not args.jsonl:
        raise ReviewForbidden("only --jsonl export is supported", hint="deid review export --jsonl > trail.jsonl")
    for event in store.events():
        print(json.dumps(event.to_json(), default=str))
    return 0


def add_review_commands(subparsers: Any) -> None:
    """Add ``deid review ...`` to the main parser's subcommands."""
    review = subparsers.add_parser("review", help="the manual review queue: users, the page, decisions, audit")
    commands = review.add_subparsers(dest="review_command", required=True, metavar="REVIEW_COMMAND")

    def sub(name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        parser.add_argument("--workspace", type=Path, default=Path("workspace"), help="private workspace")
        parser.add_argument("--db", default="", help="ledger SQLAlchemy URL (default: the workspace's ledger)")
        parser.add_argument("--config", type=Path, help="deid.toml overlaid on the defaults")
        parser.set_defaults(handler=handler)
        return parser

    add_user = sub("add-user", "create a reviewer (or reset one) and print a one-time password", _cmd_add_user)
    add_user.add_argument("name")
    add_user.add_argument("--role", choices=ROLES, default="reviewer")

    serve = sub("serve", "serve the review page (127.0.0.1:8765 by default)", _cmd_serve)
    serve.add_argument("--host", default="", help="address to listen on (default review.host)")
    serve.add_argument("--port", type=int, default=0, help="port (default review.port)")
    serve.add_argument("--allow-remote", action="store_true", help="allow a non-loopback address (use HTTPS)")
    serve.add_argument("--secure-cookies", action="store_true", help="mark cookies Secure (behind HTTPS)")

    sub("sync", "queue every held item and the audit sample", _cmd_sync)

    listing = sub("list", "list queue items (pending by default)", _cmd_list)
    listing.add_argument("--reason", help="only this reason code")
    listing.add_argument("--state", choices=[*ItemState, "all"], default="pending")
    listing.add_argument("--json", action="store_true", help="one JSON object per item")

    show = sub("show", "one item with its audit trail", _cmd_show)
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="JSON (the only format)")

    decide = sub("decide", "approve or exclude an item", _cmd_decide)
    decide.add_argument("id")
    verdict = decide.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--approve", action="store_true", help="approve (with --boxes: with these boxes)")
    verdict.add_argument("--exclude", metavar="REASON", help="exclude with this reason code (review.exclude_reasons)")
    decide.add_argument("--boxes", help='boxes to approve with: [{"kind": "face", "box": [x, y, w, h]}, ...]')
    decide.add_argument("--comment", help="a comment kept with the decision")
    decide.add_argument("--reviewer", default="cli", help="who decides (recorded; default cli)")
    decide.add_argument("--version", type=int, help="the version you saw (default: the current one)")

    sub("apply", "apply decisions: re-stage approved items from the original, remove excluded ones", _cmd_apply)
    audit = sub("audit-report", "miss rate by kind on the audit sample", _cmd_audit_report)
    audit.add_argument("--json", action="store_true")
    answers = sub("feedback", "holds resolved as nothing there, per kind and detector; proposed tables", _cmd_feedback)
    answers.add_argument(
        "--min-count", type=_positive, default=feedback.DEFAULT_MIN_COUNT, help="answers a score bin needs (20)"
    )
    answers.add_argument(
        "--bins", type=_positive, default=feedback.DEFAULT_BINS, help="equal parts of each kind's review band (4)"
    )
    answers.add_argument("--write-overlay", type=Path, help="write the proposed tables as a deid.toml overlay here")
    answers.add_argument("--json", action="store_true", help="one JSON object")
    export = sub("export", "write the review audit trail", _cmd_export)
    export.add_argument("--jsonl", action="store_true", help="one JSON event per line")


__all__ = ["add_review_commands"]
