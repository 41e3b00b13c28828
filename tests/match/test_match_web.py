"""The Cloud Vision adapter against a local server replaying the documented images:annotate format."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image

from deid.config import MatchSettings
from deid.errors import ConfigError, DetectorError, TransientError
from deid.match import CloudVisionWebDetection, WebMatchKind, build_web_searches
from deid.match.web import parse_web_detection
from deid.types import RGBImage

# Shaped as Cloud Vision v1 documents WebDetection (webEntities, fullMatchingImages,
# partialMatchingImages, pagesWithMatchingImages with pageTitle and nested images, visuallySimilarImages).
DOCUMENTED_RESPONSE: dict[str, Any] = {
    "responses": [
        {
            "webDetection": {
                "webEntities": [{"entityId": "/m/0jbk", "score": 0.61, "description": "Skin"}],
                "fullMatchingImages": [{"url": "https://atlas.example.org/img/psoriasis-12.jpg"}],
                "partialMatchingImages": [{"url": "https://forum.example.net/uploads/crop.png"}],
                "pagesWithMatchingImages": [
                    {
                        "url": "https://atlas.example.org/psoriasis",
                        "pageTitle": "Plaque <b>psoriasis</b> - Atlas",
                        "fullMatchingImages": [{"url": "https://atlas.example.org/img/psoriasis-12.jpg"}],
                    },
                    {
                        "url": "https://blog.example.com/post",
                        "pageTitle": "My skin",
                        "partialMatchingImages": [{"url": "https://blog.example.com/a.jpg"}],
                    },
                ],
                "visuallySimilarImages": [{"url": "https://other.example.org/similar.jpg"}],
                "bestGuessLabels": [{"label": "plaque psoriasis", "languageCode": "en"}],
            }
        }
    ]
}


class Replay(BaseHTTPRequestHandler):
    """Answers POST /v1/images:annotate with the queued status and body; records each request."""

    answers: ClassVar[list[tuple[int, dict[str, Any]]]] = []
    seen: ClassVar[list[tuple[str, dict[str, str], dict[str, Any]]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length))
        Replay.seen.append((self.path, dict(self.headers), body))
        status, payload = Replay.answers.pop(0) if Replay.answers else (200, DOCUMENTED_RESPONSE)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # silence the test output
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Replay)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1/images:annotate"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def client(server: str) -> CloudVisionWebDetection:
    Replay.answers.clear()
    Replay.seen.clear()
    return CloudVisionWebDetection(endpoint=server, api_key="test-key", timeout_s=5.0, max_results=7)


def test_exchange(client: CloudVisionWebDetection, photos: dict[str, RGBImage]) -> None:
    found = client.search(photos["astronaut"])
    path, headers, body = Replay.seen[-1]
    assert path == "/v1/images:annotate"
    assert headers["X-Goog-Api-Key"] == "test-key"
    request = body["requests"][0]
    assert request["features"] == [{"type": "WEB_DETECTION", "maxResults": 7}]
    sent = Image.open(io.BytesIO(base64.b64decode(request["image"]["content"])))
    assert sent.format == "JPEG" and max(sent.size) <= 1024
    assert [(m.url, m.kind) for m in found] == [
        ("https://atlas.example.org/img/psoriasis-12.jpg", WebMatchKind.FULL),
        ("https://forum.example.net/uploads/crop.png", WebMatchKind.PARTIAL),
        ("https://atlas.example.org/psoriasis", WebMatchKind.FULL),
        ("https://blog.example.com/post", WebMatchKind.PAGE),
    ]
    assert found[2].page_title.startswith("Plaque")


def test_no_matches(client: CloudVisionWebDetection) -> None:
    Replay.answers.append((200, {"responses": [{"webDetection": {}}]}))
    assert client.search(np.zeros((32, 32, 3), dtype=np.uint8)) == []


@pytest.mark.parametrize(
    ("status", "payload", "error"),
    [
        pytest.param(503, {"error": {"code": 503}}, TransientError, id="unavailable-is-transient"),
        pytest.param(429, {"error": {"code": 429}}, TransientError, id="rate-limit-is-transient"),
        pytest.param(403, {"error": {"code": 403, "message": "API key not valid"}}, DetectorError, id="refused"),
        pytest.param(
            200,
            {"responses": [{"error": {"code": 3, "message": "Bad image data."}}]},
            DetectorError,
            id="error-in-response",
        ),
        pytest.param(
            200, {"responses": [{"webDetection": {"fullMatchingImages": [{}]}}]}, DetectorError, id="malformed"
        ),
    ],
)
def test_errors_are_mapped(
    client: CloudVisionWebDetection, status: int, payload: dict[str, Any], error: type[Exception]
) -> None:
    Replay.answers.append((status, payload))
    with pytest.raises(error):
        client.search(np.zeros((32, 32, 3), dtype=np.uint8))


def test_unreachable_is_transient() -> None:
    dead = CloudVisionWebDetection(
        endpoint="http://127.0.0.1:9/v1/images:annotate", api_key="k", timeout_s=1.0, max_results=1
    )
    with pytest.raises(TransientError):
        dead.search(np.zeros((8, 8, 3), dtype=np.uint8))


def test_off_by_default_and_needs_its_key(
    settings: MatchSettings, clean_environ: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings.web_provider == "none"
    assert build_web_searches(settings) == []
    enabled = dataclasses.replace(settings, web_provider="cloud_vision")
    monkeypatch.delenv(settings.web_api_key_env, raising=False)
    with pytest.raises(ConfigError):
        build_web_searches(enabled)
    monkeypatch.setenv(settings.web_api_key_env, "k")
    (search,) = build_web_searches(enabled)
    assert isinstance(search, CloudVisionWebDetection)


def test_parse_empty() -> None:
    assert parse_web_detection({}) == []
