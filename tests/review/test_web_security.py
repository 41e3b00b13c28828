"""The review page's safety, against a real uvicorn server: sessions, CSRF, ids not paths, locking, routing."""

from __future__ import annotations

import http.client
import threading
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.routing import APIRoute

from deid.review.web import PUBLIC_ROUTES, SESSION_COOKIE
from tests.review.conftest import Served


def _routes(served: Served) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves, enumerated from the app itself."""
    found = []
    for route in served.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, APIRoute):
            found.extend((method, route.path) for method in sorted(route.methods))
    assert len(found) >= 15, found
    return found


def _fill(path: str, item_id: str) -> str:
    return path.replace("{item_id}", item_id).replace("{position}", "1").replace("{name}", "review.js")


def _send(client: httpx.Client, method: str, path: str, **kwargs: object) -> httpx.Response:
    if method == "POST" and "json" not in kwargs and "data" not in kwargs:
        kwargs["json"] = {"version": 1, "verdict": "approve", "view": "image", "regions": [], "comment": "x"}
    return client.request(method, path, **kwargs)  # type: ignore[arg-type]


def test_every_route_refuses_a_request_without_a_session(served: Served) -> None:
    item_id = served.item_id(route="image")
    client = served.client()
    for method, path in _routes(served):
        if (method, path) in PUBLIC_ROUTES:
            continue
        response = _send(client, method, _fill(path, item_id))
        assert response.status_code in (401, 403), f"{method} {path} answered {response.status_code} without a session"
    forged = served.client()
    forged.cookies.set(SESSION_COOKIE, "forged-session-token")
    for method, path in _routes(served):
        if (method, path) not in PUBLIC_ROUTES:
            response = _send(forged, method, _fill(path, item_id))
            assert response.status_code in (401, 403), f"{method} {path} took a forged session"


def test_every_state_changing_route_refuses_a_forged_csrf_token(served: Served) -> None:
    item_id = served.item_id(route="image")
    client, csrf = served.sign_in("ana")
    posts = [(m, p) for m, p in _routes(served) if m not in ("GET", "HEAD")]
    assert ("POST", "/api/items/{item_id}/decide") in posts
    for method, path in posts:
        for headers in ({"X-CSRF-Token": "forged" + csrf[6:]}, {}):
            response = _send(client, method, _fill(path, item_id), headers=headers)
            assert response.status_code == 403, f"{method} {path} took CSRF {headers}: {response.status_code}"
    # The sign-in form has its own token: a POST without it is refused too.
    assert served.client().post("/login", data={"name": "ana", "password": served.passwords["ana"]}).status_code == 403
    # Same token, foreign origin: refused.
    foreign = client.post(
        f"/api/items/{item_id}/comment",
        json={"version": 1, "comment": "x"},
        headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"},
    )
    assert foreign.status_code == 403
    assert served.store.item(item_id).version == 1, "nothing was changed by a refused request"


def test_session_cookie_is_httponly_and_samesite_strict(served: Served) -> None:
    client = served.client()
    form = client.get("/login")
    token = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    done = client.post("/login", data={"csrf_token": token, "name": "ana", "password": served.passwords["ana"]})
    cookie = next(v for k, v in done.headers.multi_items() if k == "set-cookie" and v.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert served.store.session(cookie.split(";")[0].split("=", 1)[1]) is not None
    assert "password" not in str(served.store.events()), "no secret in the audit trail"


def test_failed_sign_ins_are_rate_limited(served: Served) -> None:
    client = served.client()
    limit = served.built.config.review.max_failed_signins
    codes = []
    for _ in range(limit + 2):
        token = client.get("/login").text.split('name="csrf_token" value="')[1].split('"')[0]
        codes.append(client.post("/login", data={"csrf_token": token, "name": "ben", "password": "wrong"}).status_code)
    assert codes[:limit] == [303] * limit and codes[limit:] == [429, 429]
    token = client.get("/login").text.split('name="csrf_token" value="')[1].split('"')[0]
    right = client.post("/login", data={"csrf_token": token, "name": "ben", "password": served.passwords["ben"]})
    assert right.status_code == 429, "even the right password waits out the lockout"


def _raw_get(url: str, path: str, cookie: str) -> int:
    """Send ``path`` byte for byte (httpx would normalise dot segments away)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    connection.putrequest("GET", path, skip_accept_encoding=True)
    connection.putheader("Cookie", cookie)
    connection.endheaders()
    status = connection.getresponse().status
    connection.close()
    return status


def test_path_traversal_on_every_id_route_is_404(served: Served) -> None:
    client, _ = served.sign_in("ana")
    cookie = f"{SESSION_COOKIE}={client.cookies[SESSION_COOKIE]}"
    real = served.item_id(route="image")
    image_id = served.store.item(real).subject
    previews = served.built.workspace.previews
    # A symlink where a preview would be, and one named like an item id: neither may be followed.
    (previews / f"{image_id}_match.png").unlink(missing_ok=True)
    (previews / f"{image_id}_match.png").symlink_to("/etc/passwd")
    fake = "ab" * 16
    (previews / f"{fake}_match.png").symlink_to("/etc/passwd")
    attempts = [
        "..",
        "../..",
        "%2e%2e",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "..%2F..%2Fledger.db",
        "%2Fetc%2Fpasswd",
        "/etc/passwd",
        "%252e%252e",
        "....//",
        fake,
        image_id,
        real.upper(),
        real + "%00",
        "..%5c..%5cledger.db",
    ]
    id_routes = [p for m, p in _routes(served) if m == "GET" and "{item_id}" in p]
    assert len(id_routes) >= 6
    for path in id_routes:
        for attempt in attempts:
            status = _raw_get(served.url, path.replace("{item_id}", attempt).replace("{position}", "1"), cookie)
            assert status == 404, f"{path} with {attempt!r} answered {status}"
        if "{position}" in path:
            case_item = served.item_id(route="case")
            for attempt in ("..", "%2e%2e", "0", "-1", "/etc/passwd", "99", "1.0"):
                status = _raw_get(
                    served.url, path.replace("{item_id}", case_item).replace("{position}", attempt), cookie
                )
                assert status == 404, f"{path} position {attempt!r} answered {status}"
    assert _raw_get(served.url, f"/items/{real}/match.png", cookie) == 404, "a symlinked preview is never followed"
    assert _raw_get(served.url, f"/items/{real}/original.png", cookie) == 200
    for name in ("..%2Freview.js", "%2e%2e", "../web.py", "web.py", "review.js%00"):
        assert _raw_get(served.url, f"/static/{name}", cookie) == 404


def test_two_concurrent_decisions_give_one_200_and_one_409_and_both_are_recorded(served: Served) -> None:
    item_id = served.item_id(route="image")
    reviewers = [served.sign_in("ana"), served.sign_in("ben")]
    barrier = threading.Barrier(2)
    results: dict[str, httpx.Response] = {}

    def decide(index: int) -> None:
        client, csrf = reviewers[index]
        barrier.wait()
        body = {"version": 1, "verdict": "approve", "view": "image"}
        results[["ana", "ben"][index]] = client.post(
            f"/api/items/{item_id}/decide", json=body, headers={"X-CSRF-Token": csrf}
        )

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = sorted(r.status_code for r in results.values())
    assert codes == [200, 409], {k: (v.status_code, v.text) for k, v in results.items()}
    winner = next(name for name, r in results.items() if r.status_code == 200)
    loser = next(name for name, r in results.items() if r.status_code == 409)
    assert winner in results[loser].json()["error"], "the conflict names who decided"
    trail = served.store.events(item_id)
    assert [(e.event, e.actor) for e in trail if e.event in ("approved", "conflict")] == [
        ("approved", winner),
        ("conflict", loser),
    ]
    item = served.store.item(item_id)
    assert item.decided_by == winner and item.version == 2


def test_a_case_hold_cannot_be_approved_from_an_image_view(served: Served) -> None:
    case_item = served.item_id(route="case")
    client, csrf = served.sign_in("root")  # even an admin
    for view in ("image", "exclude_only"):
        refused = client.post(
            f"/api/items/{case_item}/decide",
            json={"version": 1, "verdict": "approve", "view": view},
            headers={"X-CSRF-Token": csrf},
        )
        assert refused.status_code == 403, refused.text
    boxes = client.post(
        f"/api/items/{case_item}/boxes", json={"version": 1, "regions": []}, headers={"X-CSRF-Token": csrf}
    )
    assert boxes.status_code == 403
    assert served.store.item(case_item).state == "pending"
    # A reviewer may not lift an under-age hold even from the case view; an admin may.
    reviewer, token = served.sign_in("ana")
    body = {"version": 1, "verdict": "approve", "view": "case"}
    assert (
        reviewer.post(f"/api/items/{case_item}/decide", json=body, headers={"X-CSRF-Token": token}).status_code == 403
    )
    assert client.post(f"/api/items/{case_item}/decide", json=body, headers={"X-CSRF-Token": csrf}).status_code == 200


def test_an_unreadable_file_can_only_be_excluded_with_its_error_shown(served: Served) -> None:
    item_id = served.item_id(route="exclude_only")
    client, csrf = served.sign_in("ana")
    page = client.get(f"/items/{item_id}")
    assert page.status_code == 200 and "unreadable_image" in page.text and 'id="approve"' not in page.text
    headers = {"X-CSRF-Token": csrf}
    approve = {"version": 1, "verdict": "approve", "view": "exclude_only"}
    assert client.post(f"/api/items/{item_id}/decide", json=approve, headers=headers).status_code == 403
    no_reason = {"version": 1, "verdict": "exclude", "view": "exclude_only"}
    assert client.post(f"/api/items/{item_id}/decide", json=no_reason, headers=headers).status_code == 400
    excluded = client.post(f"/api/items/{item_id}/decide", json={**no_reason, "reason": "unusable"}, headers=headers)
    assert excluded.status_code == 200, excluded.text


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"kind": "face", "box": [10, 10, -5, 5]}, id="negative-width"),
        pytest.param({"kind": "nose", "box": [10, 10, 5, 5]}, id="unknown-kind"),
        pytest.param({"kind": "face", "box": [9000, 9000, 5, 5]}, id="outside"),
        pytest.param({"kind": "face", "box": ["1", 2, 3, 4]}, id="string"),
        pytest.param({"kind": "face", "box": [1, 2, 3]}, id="short"),
    ],
)
def test_bad_boxes_are_refused_and_change_nothing(served: Served, bad: dict[str, object]) -> None:
    item_id = served.item_id(route="image")
    client, csrf = served.sign_in("ana")
    response = client.post(
        f"/api/items/{item_id}/boxes", json={"version": 1, "regions": [bad]}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status_code == 400
    assert served.store.item(item_id).version == 1
