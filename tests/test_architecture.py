"""Layering rules the design depends on, checked on the source text."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = sorted((ROOT / "deid").rglob("*.py"))
FLOWS = sorted((ROOT / "flows").glob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_never_imports_prefect(path: Path) -> None:
    assert not any(name == "prefect" or name.startswith(("prefect.", "prefect_")) for name in _imports(path))


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_has_no_bare_except_or_exit(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        assert not (isinstance(node, ast.ExceptHandler) and node.type is None), f"bare except at line {node.lineno}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert not (node.func.attr == "exit" and getattr(node.func.value, "id", "") == "sys"), (
                f"sys.exit at line {node.lineno}"
            )


@pytest.mark.parametrize("path", FLOWS, ids=lambda p: p.name)
def test_flow_modules_stay_thin(path: Path) -> None:
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.strip().startswith("#")]
    assert len(lines) <= 150, f"{path.name} has {len(lines)} lines; move logic into deid/"


def test_public_api_is_sorted_and_importable() -> None:
    import deid

    assert list(deid.__all__) == sorted(deid.__all__)
    for name in deid.__all__:
        assert hasattr(deid, name)


def test_error_mapping_wraps_foreign_exceptions(tmp_path: Path) -> None:
    """A foreign exception from Pillow surfaces as a deid InputError naming the file."""
    from deid.config import load_config
    from deid.errors import InputError
    from deid.io import load_image

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(InputError) as raised:
        load_image(bad, load_config().input)
    assert str(bad) in str(raised.value)
