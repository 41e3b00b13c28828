"""Layered, typed configuration: defaults load; bad user files fail at load time naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from deid.config import load_config
from deid.errors import ConfigError
from deid.types import Action, RegionKind


def test_defaults_fail_closed(config) -> None:
    assert config.policy.default_action is Action.HOLD
    # A kind with no rule is held, not released.
    rules_without_tattoo = dict(config.policy.rules)
    rules_without_tattoo.pop(RegionKind.TATTOO)
    assert config.policy.rule_for(RegionKind.TATTOO).action in {Action.HOLD, Action.REDACT, Action.CROP}


def test_user_file_overlays_key_by_key(tmp_path: Path) -> None:
    path = tmp_path / "deid.toml"
    path.write_text('[policy.rules.face]\naction = "hold"\n[output]\nformat = "jpeg"\n')
    config = load_config(path)
    assert config.policy.rule_for(RegionKind.FACE).action is Action.HOLD
    assert config.policy.rule_for(RegionKind.FACE).margin_frac > 0  # kept from the defaults
    assert config.output.format == "jpeg"
    assert config.source[-1] == str(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("[output]\nformatt = 'png'\n", "unknown key output.formatt", id="unknown-key"),
        pytest.param("[output]\nformat = 'gif'\n", "output.format", id="bad-literal"),
        pytest.param("[output]\njpeg_quality = 'high'\n", "output.jpeg_quality", id="wrong-type"),
        pytest.param("[output]\njpeg_quality = 400\n", "output.jpeg_quality", id="out-of-range"),
        pytest.param("[policy.rules.face]\naction = 'blur'\n", "policy.rules.face.action", id="blur-is-not-an-action"),
        pytest.param("[policy.rules.face]\nmin_score = 0.1\n", "policy.face", id="review-above-auto"),
        pytest.param("[policy.rules.eyes]\naction = 'redact'\n", "policy.rules.eyes", id="unknown-kind"),
        pytest.param("not toml [", "not valid TOML", id="syntax"),
    ],
)
def test_bad_user_config_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "deid.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")) as raised:
        load_config(path)
    assert str(path) in str(raised.value)


def test_missing_user_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.toml")
