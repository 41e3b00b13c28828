"""The review page: a FastAPI app factory, server-rendered Jinja2 and a little plain JavaScript.

Safety, route by route:

- every route but the sign-in form needs a signed-in session (cookie
  ``deid_session``: HttpOnly, SameSite=Strict, the token stored only as its
  SHA-256); without one a page answers 401;
- every state-changing request (all POSTs) carries the session's CSRF token
  (header ``X-CSRF-Token`` or form field ``csrf_token``) and, when the browser
  sends one, a same-origin ``Origin``; otherwise 403; the sign-in form has its
  own double-submit token;
- failed sign-ins are rate-limited per name and per address (429);
- URLs carry ledger-free opaque item ids checked against ``[0-9a-f]{32}``
  and looked up in the store; files are found from the ledger's digest
  (originals) or the image id (previews), never from any part of a URL, and a
  preview that is a symlink or leaves ``previews/`` is refused: 404;
- two decisions on one item: the first wins, the second gets 409 naming who decided;
- the candidate shown is rendered on the server from the original with the
  boxes stored for the item after every edit; client pixels are never used.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import secrets
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from deid.config import Config
from deid.errors import DeidError, ReviewConflict, ReviewNotFound
from deid.ledger import Ledger
from deid.review.apply import OriginalCache, encode_preview, render_candidate
from deid.review.queue import (
    KIND_KEYS,
    ItemState,
    QueueFilter,
    ReviewItem,
    ReviewRegion,
    Route,
    Verdict,
    reviewer_decision,
)
from deid.review.store import ReviewStore, Session
from deid.types import ImageRecord, RegionKind
from deid.workspace import Workspace, open_ledger

logger = logging.getLogger(__name__)

SESSION_COOKIE = "deid_session"
SIGNIN_COOKIE = "deid_signin"
CSRF_HEADER = "x-csrf-token"
ITEM_ID = re.compile(r"^[0-9a-f]{32}$")
POSITION = re.compile(r"^[1-9][0-9]?$")
STATIC_FILES = {"review.js": "text/javascript", "review.css": "text/css"}
SECURITY_HEADERS = {
    "Cache-Control": "no-store, private",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",  # "no-referrer" makes Chromium send "Origin: null" on form posts
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
PUBLIC_ROUTES = frozenset({("GET", "/login"), ("POST", "/login")})
"""The only routes reachable without a session (the sign-in form itself; POST still needs its token)."""


@dataclass(frozen=True, slots=True)
class ReviewContext:
    """What the app's routes share."""

    workspace: Workspace
    config: Config
    ledger: Ledger
    store: ReviewStore
    originals: OriginalCache
    secure_cookies: bool


def _json_script(value: object) -> Markup:
    """JSON safe inside a ``<script type="application/json">`` element."""
    text = json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def create_app(
    workspace: Workspace,
    config: Config,
    *,
    ledger: Ledger | None = None,
    store: ReviewStore | None = None,
    secure_cookies: bool = False,
) -> FastAPI:
    """Build the review app for a workspace.

    Parameters
    ----------
    workspace
        The private workspace (originals, previews, held candidates).
    config
        Validated configuration (``[review]``, ``[policy]``, ``[input]``).
    ledger
        The ledger; by default the workspace's (``[ledger] url`` or SQLite).
    store
        The review tables; by default on the ledger's engine.
    secure_cookies
        Mark cookies ``Secure`` (set it when serving behind HTTPS).

    Returns
    -------
    FastAPI
        The app; run it with uvicorn (:func:`deid.review.cli` ``serve``).

    Raises
    ------
    LedgerError
        If the ledger or the review tables cannot be opened.
    """
    opened = ledger or open_ledger(workspace, config)
    context = ReviewContext(
        workspace, config, opened, store or ReviewStore(opened.engine), OriginalCache(), secure_cookies
    )
    app = FastAPI(title="deid review", docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    app.state.review = context
    templates = Environment(
        loader=PackageLoader("deid.review", "templates"), autoescape=select_autoescape(["html"]), auto_reload=False
    )
    templates.filters["json_script"] = _json_script

    def page(name: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        return HTMLResponse(templates.get_template(name).render(**values), status_code=status_code)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for header, value in SECURITY_HEADERS.items():
            response.headers.setdefault(header, value)
        return response

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        if request.url.path.startswith("/api/") or error.status_code not in (401, 403, 404, 429):
            return JSONResponse({"error": error.detail}, status_code=error.status_code)
        return page("error.html", status_code=error.status_code, status=error.status_code, message=error.detail)

    def item_or_404(item_id: str) -> ReviewItem:
        if not ITEM_ID.match(item_id):
            raise HTTPException(404, "no such item")
        try:
            return context.store.item(item_id)
        except ReviewNotFound:
            raise HTTPException(404, "no such item") from None

    def image_of(item: ReviewItem, position: str | None = None) -> ImageRecord:
        if item.subject_type == "image" and position is None:
            return context.ledger.image(item.subject)
        if item.subject_type != "case" or position is None or not POSITION.match(position):
            raise HTTPException(404, "no such image")
        records = context.ledger.images(contribution_id=item.subject)
        if int(position) > len(records):
            raise HTTPException(404, "no such image")
        return records[int(position) - 1]

    # sign-in -----------------------------------------------------------------

    @app.get("/login", response_class=HTMLResponse)
    def signin_form(request: Request) -> Response:
        token = secrets.token_urlsafe(24)
        response = page("login.html", token=token, message=request.query_params.get("m", "")[:100])
        response.set_cookie(
            SIGNIN_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            path="/login",
            secure=context.secure_cookies,
            max_age=900,
        )
        return response

    @app.post("/login")
    async def signin(request: Request) -> Response:
        _check_origin(request)
        form = await _form(request)
        token = form.get("csrf_token", "")
        cookie = request.cookies.get(SIGNIN_COOKIE, "")
        if not token or not cookie or not hmac.compare_digest(token.encode(), cookie.encode()):
            raise HTTPException(403, "the sign-in form expired; reload it")
        name, password = form.get("name", "")[:64], form.get("password", "")[:200]
        address = request.client.host if request.client else "unknown"
        keys = [f"name:{name}", f"addr:{address}"]
        settings = context.config.review
        if any(
            context.store.signin_failures(k, window_s=settings.signin_window_s) >= settings.max_failed_signins
            for k in keys
        ):
            logger.warning("sign-in refused from %s: too many failures", address)
            raise HTTPException(429, "too many failed sign-ins; wait and try again")
        reviewer = context.store.authenticate(name, password)
        if reviewer is None:
            context.store.record_signin_failure(keys)
            logger.info("failed sign-in from %s", address)  # the typed name may be anything: never logged
            return RedirectResponse("/login?" + urlencode({"m": "wrong name or password"}), status_code=303)
        context.store.clear_signin_failures(keys)
        session_token, _ = context.store.create_session(reviewer, hours=settings.session_hours)
        logger.info("%s signed in", reviewer.name)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            session_token,
            httponly=True,
            samesite="strict",
            path="/",
            secure=context.secure_cookies,
            max_age=int(settings.session_hours * 3600),
        )
        response.delete_cookie(SIGNIN_COOKIE, path="/login")
        return response

    @app.post("/logout")
    def signout(request: Request, session: Checked) -> Response:
        context.store.end_session(request.cookies.get(SESSION_COOKIE, ""))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/static/{name}")
    def static(name: str, session: Signed) -> Response:
        if name not in STATIC_FILES:
            raise HTTPException(404, "no such file")
        data = resources.files("deid.review").joinpath("static", name).read_bytes()
        return Response(data, media_type=STATIC_FILES[name])

    # the queue ---------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def queue_page(request: Request, session: Signed) -> Response:
        where, after = _filter_from(request)
        listed = context.store.list_items(where, after=after, limit=context.config.review.page_size)
        counts = context.store.counts_by_reason()
        query = {k: v for k, v in request.query_params.items() if k != "after"}
        next_url = "/?" + urlencode({**query, "after": listed.next_after}) if listed.next_after else ""
        return page(
            "queue.html",
            session=session,
            items=listed.items,
            counts=counts,
            next_url=next_url,
            query=query,
            kinds=KIND_KEYS,
            states=list(ItemState),
            routes=list(Route),
            filter_suffix=("?" + urlencode(query)) if query else "",
        )

    @app.get("/api/items")
    def list_api(request: Request, session: Signed) -> Response:
        where, after = _filter_from(request)
        limit = _int(request.query_params.get("limit"), context.config.review.page_size, 1, 1000)
        listed = context.store.list_items(where, after=after, limit=limit)
        return JSONResponse(
            {
                "items": [item.to_json() for item in listed.items],
                "next_after": listed.next_after,
                "counts": context.store.counts_by_reason(),
            }
        )

    # one item ----------------------------------------------------------------

    @app.get("/items/{item_id}", response_class=HTMLResponse)
    def item_page(request: Request, item_id: str, session: Signed) -> Response:
        item = item_or_404(item_id)
        context.store.record_view(item, actor=session.reviewer.name)
        where, _ = _filter_from(request)
        previous, following = context.store.neighbours(item, where)
        suffix = ("?" + urlencode(dict(request.query_params))) if request.query_params else ""
        data = _item_data(context, item, session)
        data["prev_url"] = f"/items/{previous}{suffix}" if previous else ""
        data["next_url"] = f"/items/{following}{suffix}" if following else ""
        data["queue_url"] = "/" + suffix
        return page(
            "item.html",
            session=session,
            item=item,
            data=data,
            kinds=KIND_KEYS,
            exclude_reasons=context.config.review.exclude_reasons,
        )

    @app.get("/api/items/{item_id}")
    def item_api(item_id: str, session: Signed) -> Response:
        item = item_or_404(item_id)
        return JSONResponse(_item_data(context, item, session))

    def png(data: bytes) -> Response:
        return Response(data, media_type="image/png")

    @app.get("/items/{item_id}/original.png")
    def original(item_id: str, session: Signed) -> Response:
        item = item_or_404(item_id)
        return png(encode_preview(load_pixels(image_of(item)), side_px=context.config.review.preview_side_px))

    @app.get("/items/{item_id}/candidate.png")
    def candidate(item_id: str, session: Signed) -> Response:
        item = item_or_404(item_id)
        pixels = load_pixels(image_of(item))
        rendered = render_candidate(pixels, item.regions, context.config, f"review:{session.reviewer.name}")
        return png(encode_preview(rendered, side_px=context.config.review.preview_side_px))

    @app.get("/items/{item_id}/images/{position}/original.png")
    def case_original(item_id: str, position: str, session: Signed) -> Response:
        record = image_of(item_or_404(item_id), position)
        return png(encode_preview(load_pixels(record), side_px=context.config.review.preview_side_px // 2))

    @app.get("/items/{item_id}/images/{position}/candidate.png")
    def case_candidate(item_id: str, position: str, session: Signed) -> Response:
        record = image_of(item_or_404(item_id), position)
        recorded = context.ledger.latest_decision(record.image_id)
        regions = tuple(ReviewRegion(r) for r in recorded.decision.regions) if recorded else ()
        rendered = render_candidate(load_pixels(record), regions, context.config, "policy")
        return png(encode_preview(rendered, side_px=context.config.review.preview_side_px // 2))

    @app.get("/items/{item_id}/match.png")
    def match_preview(item_id: str, session: Signed) -> Response:
        item = item_or_404(item_id)
        record = image_of(item)
        folder = context.workspace.previews.resolve()
        path = context.workspace.previews / f"{record.image_id}_match.png"
        if not path.is_file() or path.is_symlink() or path.resolve().parent != folder:
            raise HTTPException(404, "no match preview")
        return png(path.read_bytes())

    def load_pixels(record: ImageRecord) -> Any:
        try:
            return context.originals.load(context.workspace, record, context.config)
        except DeidError as error:
            logger.info("cannot show image %s: %s", record.image_id, error.code)
            raise HTTPException(404, f"the original cannot be shown ({error.code})") from None

    # changes -----------------------------------------------------------------

    async def body_of(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(400, "send a JSON object") from None
        if not isinstance(body, dict):
            raise HTTPException(400, "send a JSON object")
        return body

    def version_of(body: dict[str, Any]) -> int:
        version = body.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise HTTPException(400, "send the item's version")
        return version

    def regions_of(item: ReviewItem, raw: object, session: Session) -> tuple[ReviewRegion, ...]:
        if not isinstance(raw, list) or len(raw) > 200:
            raise HTTPException(400, "regions must be a list of at most 200 boxes")
        shape = _shape_of(context, item)
        try:
            return tuple(ReviewRegion.from_json(r, shape=shape, source=f"review:{session.reviewer.name}") for r in raw)
        except ValueError as error:
            raise HTTPException(400, str(error)) from None

    @app.post("/api/items/{item_id}/boxes")
    async def edit_boxes(request: Request, item_id: str, session: Checked) -> Response:
        item = item_or_404(item_id)
        body = await body_of(request)
        if item.route is not Route.IMAGE:
            raise HTTPException(403, f"a {item.route} item has no boxes to edit")
        regions = regions_of(item, body.get("regions"), session)
        try:
            updated = context.store.edit_regions(item_id, version_of(body), regions, actor=session.reviewer.name)
        except ReviewConflict as error:
            return JSONResponse({"error": str(error)}, status_code=409)
        return JSONResponse({"version": updated.version, "regions": [r.to_json() for r in updated.regions]})

    @app.post("/api/items/{item_id}/comment")
    async def comment(request: Request, item_id: str, session: Checked) -> Response:
        item_or_404(item_id)
        body = await body_of(request)
        text = body.get("comment")
        if not isinstance(text, str):
            raise HTTPException(400, "send a comment")
        try:
            updated = context.store.comment(item_id, version_of(body), text, actor=session.reviewer.name)
        except ReviewConflict as error:
            return JSONResponse({"error": str(error)}, status_code=409)
        return JSONResponse({"version": updated.version})

    @app.post("/api/items/{item_id}/decide")
    async def decide(request: Request, item_id: str, session: Checked) -> Response:
        item = item_or_404(item_id)
        body = await body_of(request)
        version = version_of(body)
        try:
            verdict = Verdict(str(body.get("verdict", "")))
            view = Route(str(body.get("view", "")))
        except ValueError:
            raise HTTPException(400, "verdict is approve or exclude; view is image, case or exclude_only") from None
        regions = regions_of(item, body["regions"], session) if "regions" in body else None
        try:
            decision = reviewer_decision(
                item,
                verdict,
                view=view,
                regions=regions,
                reason=str(body.get("reason", "")),
                comment=str(body.get("comment", "")),
                exclude_reasons=context.config.review.exclude_reasons,
                role=session.reviewer.role,
            )
        except PermissionError as error:
            raise HTTPException(403, str(error)) from None
        except ValueError as error:
            raise HTTPException(400, str(error)) from None
        try:
            decided = context.store.decide(item_id, version, decision, actor=session.reviewer.name)
        except ReviewConflict as error:
            return JSONResponse({"error": str(error)}, status_code=409)
        _, following = context.store.neighbours(decided, QueueFilter())
        return JSONResponse(
            {
                "state": str(decided.state),
                "version": decided.version,
                "decided_by": decided.decided_by,
                "next_url": f"/items/{following}" if following else "/",
            }
        )

    return app


def _session_of(request: Request) -> Session:
    """The request's live session, or 401."""
    context: ReviewContext = request.app.state.review
    found = context.store.session(request.cookies.get(SESSION_COOKIE, ""))
    if found is None:
        raise HTTPException(401, "sign in first")
    return found


async def _checked_session(request: Request) -> Session:
    """A session whose CSRF token (and Origin, when sent) match: for every state-changing request."""
    found = _session_of(request)
    _check_origin(request)
    token = request.headers.get(CSRF_HEADER, "")
    if not token:
        token = (await _form(request)).get("csrf_token", "")
    if not token or not hmac.compare_digest(token.encode(), found.csrf.encode()):
        logger.info("refused a request by %s: bad CSRF token", found.reviewer.name)
        raise HTTPException(403, "bad or missing CSRF token")
    return found


Signed = Annotated[Session, Depends(_session_of)]
Checked = Annotated[Session, Depends(_checked_session)]


MAX_FORM_BYTES = 16_384


async def _form(request: Request) -> dict[str, str]:
    """A small URL-encoded form body (sign-in, sign-out); anything else reads as empty."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, "form too large")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _check_origin(request: Request) -> None:
    """A browser's cross-site POST carries a foreign Origin: refuse it."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "")
    if origin == "null" or urlsplit(origin).netloc != host:
        raise HTTPException(403, "cross-origin request refused")


def _int(text: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(text), low), high) if text else default
    except ValueError:
        return default


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _filter_from(request: Request) -> tuple[QueueFilter, int]:
    """The queue filter and page key from the query string (unknown values are ignored, never echoed into SQL)."""
    query = request.query_params
    state_text = query.get("state", "pending")
    state = (
        None if state_text == "all" else ItemState(state_text) if state_text in set(ItemState) else ItemState.PENDING
    )
    kind = RegionKind(query["kind"]) if query.get("kind") in set(RegionKind) else None
    route = Route(query["route"]) if query.get("route") in set(Route) else None
    audit = {"1": True, "0": False}.get(query.get("audit", ""))
    where = QueueFilter(
        state=state,
        reason=query.get("reason", "")[:64] or None,
        route=route,
        kind=kind,
        min_score=_float(query.get("min_score")),
        max_score=_float(query.get("max_score")),
        body_part=query.get("body_part", "")[:64] or None,
        reviewer=query.get("reviewer", "")[:64] or None,
        older_than_hours=_float(query.get("older_than_hours")),
        audit=audit,
    )
    return where, _int(query.get("after"), 0, 0, 2**62)


def _shape_of(context: ReviewContext, item: ReviewItem) -> tuple[int, int] | None:
    if item.subject_type != "image":
        return None
    details = context.ledger.image_details(item.subject)
    if details.width is None or details.height is None:
        return None
    return details.height, details.width


def _item_data(context: ReviewContext, item: ReviewItem, session: Session) -> dict[str, Any]:
    """Everything the item page and its script need (no free text of the contributor, no exact age)."""
    data: dict[str, Any] = {**item.to_json(), "me": session.reviewer.name, "role": session.reviewer.role}
    if item.subject_type == "image":
        details = context.ledger.image_details(item.subject)
        data["width"], data["height"] = details.width, details.height
        data["detected"] = [region.to_json() for region in details.regions]
        data["matches"] = [
            {"distance": m.match.distance, "method": m.match.method, "verified": m.match.verified, "verdict": m.verdict}
            for m in details.matches
        ]
        data["has_match_preview"] = (context.workspace.previews / f"{item.subject}_match.png").is_file()
        status = context.ledger.contribution_status(details.record.contribution_id)
        data["case_held"] = list(status[1]) if status is not None and status[0].value == "held" else []
        data["images"] = []
    else:
        records = context.ledger.images(contribution_id=item.subject)
        data["images"] = [
            {"position": n, "status": str(r.status), "reasons": list(r.reasons), "shot_type": r.shot_type}
            for n, r in enumerate(records, start=1)
        ]
        cases = context.ledger.cases([item.subject])
        case = cases.get(item.subject)
        data["case"] = (
            {"body_parts": sorted(case.body_parts), "images": len(case.images), "submitted": case.submitted_at[:4]}
            if case
            else None
        )
    return data


def is_loopback(host: str) -> bool:
    """True for 127.0.0.1, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


__all__ = ["PUBLIC_ROUTES", "SESSION_COOKIE", "create_app", "is_loopback"]
