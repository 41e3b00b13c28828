"""Review queue benchmark: page latency at 10 and at 10,000 pending items, and decisions per minute.

Builds the review tests' batch with the real pipeline (one held image, one
audit sample, one unreadable file, one under-age case) in a temporary SQLite
workspace, adds synthetic pending case items until the queue holds
``--items``, serves the real app with uvicorn on loopback and, through HTTP
with a signed-in session, prints p50/p95 of:

* the queue page (``GET /``, ``review.page_size`` rows) and the JSON list
  (``GET /api/items``, 10 rows) at a random page key and with a reason
  filter, at 10 items and at ``--items``;
* the item page (``GET /items/<id>``) and the server-rendered candidate
  (``GET /items/<id>/candidate.png``) of the held image;

then a scripted reviewer (load the item JSON, approve) decides ``--decisions``
items one after another and the rate is printed as decisions per minute.

Run ``python benchmarks/review_queue.py`` (about a minute).
"""

from __future__ import annotations

import argparse
import random
import re
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import uvicorn

from deid.review.apply import sync_queue
from deid.review.queue import QueueCandidate, QueueFilter, Route
from deid.review.store import ReviewStore
from deid.review.web import create_app
from tests.review.workspaces import Built, build_workspace


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _synthetic(count: int, start: int) -> list[QueueCandidate]:
    codes = ("case_suppressed", "body_part_held", "case_held")
    return [
        QueueCandidate(
            subject_type="case",
            subject=f"bench-{n:06d}",
            route=Route.CASE,
            reason_code=codes[n % 3],
            reasons=(f"case suppressed: synthetic {n}",),
            contribution_id=f"bench-{n:06d}",
            body_parts=("arm",),
        )
        for n in range(start, start + count)
    ]


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms"


def _time(call: Callable[[], httpx.Response], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = call()
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text[:200]
    return samples


def _sign_in(client: httpx.Client, name: str, password: str) -> str:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    client.post("/login", data={"csrf_token": token.group(1), "name": name, "password": password})
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text)
    assert csrf, "sign-in failed"
    return csrf.group(1)


def _measure(client: httpx.Client, store: ReviewStore, label: str, repeats: int) -> None:
    seqs = [item.seq for item in store.list_items(QueueFilter(), limit=100000).items]
    rng = random.Random(0)
    print(f"queue of {len(seqs)} pending item(s) ({label}):")
    page = _time(lambda: client.get("/", params={"after": rng.choice(seqs)}), repeats)
    print(f"  queue page, random page          {_percentiles(page)}")
    # Ten rows a page in both queues, so the figures compare the cost of the queue's size, not of the page's.
    listing = _time(lambda: client.get("/api/items", params={"after": rng.choice(seqs), "limit": 10}), repeats)
    print(f"  JSON list, 10 rows, random page  {_percentiles(listing)}")
    filtered = _time(lambda: client.get("/api/items", params={"reason": "case_held", "limit": 10}), repeats)
    print(f"  JSON list, 10 rows, by reason    {_percentiles(filtered)}")


def main() -> None:
    """Build, serve, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--decisions", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=60)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="deid-review-bench-"))
    built: Built = build_workspace(root)
    store = ReviewStore(built.ledger.engine)
    sync_queue(built.ledger, store, built.config)
    password = store.add_user("bench", role="admin", scrypt_n=built.config.review.scrypt_n)
    app = create_app(built.workspace, built.config, ledger=built.ledger, store=store)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    held = next(i for i in store.list_items(QueueFilter(route=Route.IMAGE, audit=False)).items)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        csrf = _sign_in(client, "bench", password)
        present = len(store.list_items(QueueFilter(), limit=100000).items)
        store.add_items(_synthetic(10 - present, 0))
        _measure(client, store, "small", args.repeats)
        store.add_items(_synthetic(args.items - 10, 10 - present))
        _measure(client, store, "large", args.repeats)
        item_page = _time(lambda: client.get(f"/items/{held.item_id}"), args.repeats)
        print(f"  item page (image view)           {_percentiles(item_page)}")
        rendered = _time(lambda: client.get(f"/items/{held.item_id}/candidate.png"), max(10, args.repeats // 4))
        print(f"  candidate re-render (512x767)    {_percentiles(rendered)}")
        targets = store.list_items(QueueFilter(reason="case_suppressed"), limit=args.decisions).items
        started = time.perf_counter()
        for item in targets:
            data = client.get(f"/api/items/{item.item_id}").json()
            body = {"version": data["version"], "verdict": "approve", "view": "case"}
            done = client.post(f"/api/items/{item.item_id}/decide", json=body, headers={"X-CSRF-Token": csrf})
            assert done.status_code == 200, done.text
        seconds = time.perf_counter() - started
        rate = len(targets) / seconds * 60
        print(f"scripted reviewer: {len(targets)} decisions in {seconds:.1f} s = {rate:.0f} per minute")
    server.should_exit = True
    thread.join(timeout=10)


if __name__ == "__main__":
    main()
