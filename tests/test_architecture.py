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


def _dynamic_imports(path: Path) -> set[str]:
    """Module names passed as string literals to ``importlib.import_module`` or ``__import__``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return names


FLOW_ENTRY_POINTS = {"deid/cli.py": {"flows.deidentify"}}
"""The one sanctioned way up from the library into flows/: ``deid run`` starts the deidentify flow.

Users expect one console script; the CLI reaches the flow module through
importlib at call time, so importing :mod:`deid` never imports Prefect. Every
other module of the library stays below flows/, statically and dynamically.
"""


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_reaches_flows_only_through_the_cli_entry_points(path: Path) -> None:
    relative = path.relative_to(ROOT).as_posix()
    static = {name for name in _imports(path) if name == "flows" or name.startswith("flows.")}
    assert not static, f"{relative} imports {sorted(static)}: the library never imports flows/"
    dynamic = {name for name in _dynamic_imports(path) if name == "flows" or name.startswith("flows.")}
    assert dynamic <= FLOW_ENTRY_POINTS.get(relative, set()), (
        f"{relative} reaches {sorted(dynamic)}; only {FLOW_ENTRY_POINTS} may (see the docstring)"
    )
