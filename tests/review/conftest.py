"""Fixtures for the review queue: a workspace built by the real pipeline, a real uvicorn server in a thread."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from deid.review.apply import sync_queue
from deid.review.store import ReviewStore
from deid.review.web import create_app
from tests.review.workspaces import Built, build_workspace, copy_workspace
from tests.servers import running_postgres


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The review batch, processed once per session (SQLite); tests work on copies."""
    return build_workspace(tmp_path_factory.mktemp("review-batch"))


@pytest.fixture
def workspace(built: Built, tmp_path: Path) -> Built:
    """A private copy of the built workspace."""
    return copy_workspace(built, tmp_path)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with running_postgres() as url:
        yield url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    """A running review server on a workspace copy."""

    url: str
    built: Built
    store: ReviewStore
    app: object
    passwords: dict[str, str]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=60)

    def sign_in(self, name: str) -> tuple[httpx.Client, str]:
        """A client with a live session, and that session's CSRF token."""
        client = self.client()
        form = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token, form.text
        done = client.post(
            "/login", data={"csrf_token": token.group(1), "name": name, "password": self.passwords[name]}
        )
        assert done.status_code == 303 and done.headers["location"] == "/", done.text
        page = client.get("/")
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert csrf, page.text
        return client, csrf.group(1)

    def item_id(self, *, route: str, audit: bool = False) -> str:
        from deid.review.queue import QueueFilter, Route

        found = self.store.list_items(QueueFilter(route=Route(route), audit=audit)).items
        assert found, f"no {route} item"
        return found[0].item_id


def serve(built: Built) -> Iterator[Served]:
    """Start uvicorn on the workspace in a thread; stop it afterwards."""
    store = ReviewStore(built.ledger.engine)
    sync_queue(built.ledger, store, built.config)
    passwords = {
        "ana": store.add_user("ana", role="reviewer", scrypt_n=built.config.review.scrypt_n),
        "ben": store.add_user("ben", role="reviewer", scrypt_n=built.config.review.scrypt_n),
        "root": store.add_user("root", role="admin", scrypt_n=built.config.review.scrypt_n),
    }
    app = create_app(built.workspace, built.config, ledger=built.ledger, store=store)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield Served(f"http://127.0.0.1:{port}", built, store, app, passwords)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def served(workspace: Built) -> Iterator[Served]:
    yield from serve(workspace)
