"""The seam for web reverse-image search, and an optional Google Cloud Vision adapter.

The local index (:mod:`deid.match.index`) is the default and the only search
on unless ``match.web_provider`` names a provider. A provider sends the image
away, so it is off by default and must be switched on knowingly.

:class:`CloudVisionWebDetection` calls ``images:annotate`` with the
``WEB_DETECTION`` feature and reads ``fullMatchingImages`` (copies, including
resized ones), ``partialMatchingImages`` (crops and edits sharing keypoints)
and ``pagesWithMatchingImages`` (pages showing either), as documented for
Cloud Vision v1. It uses only the standard library's HTTP client; the API key
comes from the environment variable ``match.web_api_key_env``, never from a file.
"""

from __future__ import annotations

import base64
import enum
import io
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from deid.config import MatchSettings
from deid.errors import ConfigError, DetectorError, TransientError
from deid.match.fingerprint import thumbnail
from deid.types import RGBImage

logger = logging.getLogger(__name__)

_UPLOAD_SIDE_PX = 1024  # enough for web matching; sends less of the contributor's photo


class WebMatchKind(enum.StrEnum):
    """How a web page or image matched."""

    FULL = "full"
    PARTIAL = "partial"
    PAGE = "page"


@dataclass(frozen=True, slots=True)
class WebMatch:
    """One public copy reported by a web reverse-image search."""

    url: str
    kind: WebMatchKind
    score: float
    provider: str
    page_title: str = ""

    def to_json(self) -> dict[str, object]:
        """JSON form for the ledger and the CLI."""
        return {
            "url": self.url,
            "kind": str(self.kind),
            "score": self.score,
            "provider": self.provider,
            "page_title": self.page_title,
        }


@runtime_checkable
class ReverseImageSearch(Protocol):
    """Searches the web for public copies of an image."""

    name: str

    def search(self, image: RGBImage) -> list[WebMatch]:
        """Public copies found; ``[]`` when none.

        Raises
        ------
        TransientError
            On a timeout, a rate limit or a server error (worth retrying).
        DetectorError
            On a refused request or an unreadable answer (the image is held).
        """
        ...


class CloudVisionWebDetection:
    """Google Cloud Vision ``images:annotate`` with ``WEB_DETECTION``.

    Parameters
    ----------
    endpoint
        The ``images:annotate`` URL (tests point it at a local server).
    api_key
        Sent as the ``X-Goog-Api-Key`` header.
    timeout_s
        Per-request timeout in seconds.
    max_results
        ``maxResults`` of the feature.
    """

    name = "cloud_vision"

    def __init__(self, *, endpoint: str, api_key: str, timeout_s: float, max_results: int) -> None:
        self.endpoint = endpoint
        self._api_key = api_key
        self.timeout_s = timeout_s
        self.max_results = max_results

    def request_body(self, image: RGBImage) -> dict[str, Any]:
        """The JSON request for one image (a JPEG copy at most 1024 px long)."""
        buffer = io.BytesIO()
        Image.fromarray(thumbnail(image, _UPLOAD_SIDE_PX)).save(buffer, "JPEG", quality=90)
        return {
            "requests": [
                {
                    "image": {"content": base64.b64encode(buffer.getvalue()).decode("ascii")},
                    "features": [{"type": "WEB_DETECTION", "maxResults": self.max_results}],
                }
            ]
        }

    def search(self, image: RGBImage) -> list[WebMatch]:
        """Send ``image`` to Cloud Vision and return its full, partial and page matches.

        Raises
        ------
        TransientError
            On a timeout, connection failure, HTTP 429 or 5xx.
        DetectorError
            On another HTTP error, an error inside the response, or a malformed answer.
        """
        body = json.dumps(self.request_body(image)).encode("utf-8")
        request = urllib.request.Request(
            self.endpoint,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "X-Goog-Api-Key": self._api_key},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as error:
            if error.code == 429 or error.code >= 500:
                raise TransientError(f"Cloud Vision answered HTTP {error.code}", hint="retry later") from error
            raise DetectorError(
                f"Cloud Vision refused the request: HTTP {error.code}", hint="check the API key and quota"
            ) from error
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise TransientError(f"cannot reach Cloud Vision: {error}", hint="check the network") from error
        except ValueError as error:
            raise DetectorError(f"Cloud Vision sent invalid JSON: {error}") from error
        return parse_web_detection(payload, provider=self.name)


def parse_web_detection(payload: Mapping[str, Any], *, provider: str = "cloud_vision") -> list[WebMatch]:
    """Read the matches out of an ``images:annotate`` response for one image.

    Raises
    ------
    DetectorError
        If the response carries an error or is not shaped as documented.
    """
    try:
        responses = payload.get("responses", [])
        if not responses:
            return []
        first = responses[0]
        if "error" in first:
            error = first["error"]
            raise DetectorError(f"Cloud Vision error {error.get('code')}: {error.get('message', '')}")
        detection = first.get("webDetection", {})
        matches: list[WebMatch] = []
        for key, kind in (("fullMatchingImages", WebMatchKind.FULL), ("partialMatchingImages", WebMatchKind.PARTIAL)):
            for item in detection.get(key, []):
                matches.append(WebMatch(str(item["url"]), kind, float(item.get("score", 0.0)), provider))
        for page in detection.get("pagesWithMatchingImages", []):
            kind = WebMatchKind.FULL if page.get("fullMatchingImages") else WebMatchKind.PAGE
            matches.append(
                WebMatch(
                    str(page["url"]), kind, float(page.get("score", 0.0)), provider, str(page.get("pageTitle", ""))
                )
            )
        return matches
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as error:
        raise DetectorError(f"Cloud Vision answer is not shaped as documented: {error!r}") from error


def _cloud_vision(settings: MatchSettings) -> ReverseImageSearch:
    key = os.environ.get(settings.web_api_key_env, "")
    if not key:
        raise ConfigError(
            f"match.web_provider = 'cloud_vision' but ${settings.web_api_key_env} is not set",
            hint=f"export {settings.web_api_key_env}=<key>, or set match.web_provider = 'none'",
        )
    return CloudVisionWebDetection(
        endpoint=settings.web_endpoint,
        api_key=key,
        timeout_s=settings.web_timeout_s,
        max_results=settings.web_max_results,
    )


WEB_SEARCHES: dict[str, Callable[[MatchSettings], ReverseImageSearch]] = {"cloud_vision": _cloud_vision}
"""Web reverse-image search providers by the name used in ``match.web_provider``."""


def build_web_searches(settings: MatchSettings) -> list[ReverseImageSearch]:
    """The web searches switched on in ``settings``: ``[]`` for ``web_provider = "none"`` (the default).

    Raises
    ------
    ConfigError
        If the provider is unknown or its API key is not in the environment.
    """
    if settings.web_provider == "none":
        return []
    if settings.web_provider not in WEB_SEARCHES:
        raise ConfigError(
            f"unknown web provider {settings.web_provider!r}", hint=f"valid: none, {', '.join(WEB_SEARCHES)}"
        )
    return [WEB_SEARCHES[settings.web_provider](settings)]
