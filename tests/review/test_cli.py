"""`deid review ...` goes through the same library calls as the page."""

from __future__ import annotations

import json

import pytest

from deid.cli import EXIT_ERROR, EXIT_OK, main
from tests.review.workspaces import CONFIG, Built


def _run(capsys: pytest.CaptureFixture[str], built: Built, *args: str) -> tuple[int, str, str]:
    code = main(["review", *args, "--workspace", str(built.workspace.root), "--config", str(CONFIG)])
    out, err = capsys.readouterr()
    return code, out, err


def test_review_commands_list_show_decide_apply_report_export(
    workspace: Built, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, workspace, "add-user", "cleo", "--role", "admin")
    assert code == EXIT_OK and "one-time password: " in out
    password = out.split("one-time password: ")[1].split()[0]
    assert password not in (workspace.workspace.root / "ledger.db").read_bytes().decode("latin-1")

    code, out, _ = _run(capsys, workspace, "list", "--json")
    listed = [json.loads(line) for line in out.splitlines()]
    assert code == EXIT_OK and len(listed) == 4
    assert all({"id", "state", "reasons"} <= set(item) for item in listed)
    held = next(i for i in listed if i["reason_code"] == "text_rule_hold")
    _, only_text, _ = _run(capsys, workspace, "list", "--json", "--reason", "text_rule_hold")
    assert [json.loads(line)["id"] for line in only_text.splitlines()] == [held["id"]]

    code, out, _ = _run(capsys, workspace, "show", held["id"], "--json")
    shown = json.loads(out)
    assert code == EXIT_OK and shown["id"] == held["id"] and shown["events"][0]["event"] == "queued"

    boxes = json.dumps([*shown["regions"], {"kind": "face", "box": [160, 30, 120, 170]}])
    code, out, _ = _run(capsys, workspace, "decide", held["id"], "--approve", "--boxes", boxes, "--reviewer", "cleo")
    assert code == EXIT_OK and json.loads(out)["state"] == "approved"
    code, _, err = _run(capsys, workspace, "decide", held["id"], "--exclude", "other", "--version", "1")
    assert code == EXIT_ERROR and "review_conflict" in err and "cleo" in err
    audit = next(i for i in listed if i["audit"])
    code, _, err = _run(capsys, workspace, "decide", audit["id"], "--exclude", "not-a-code")
    assert code == EXIT_ERROR and "one of" in err
    _run(capsys, workspace, "decide", audit["id"], "--exclude", "identifying")
    code, _, err = _run(capsys, workspace, "decide", "0" * 32, "--approve")
    assert code == EXIT_ERROR and "review_not_found" in err

    code, out, _ = _run(capsys, workspace, "apply")
    counts = json.loads(out)["counts"]
    assert code == EXIT_OK and counts["staged"] == 1 and counts["excluded"] == 1

    code, out, _ = _run(capsys, workspace, "audit-report", "--json")
    assert code == EXIT_OK and json.loads(out)["excluded_by_reviewer"] == 1

    code, out, _ = _run(capsys, workspace, "export", "--jsonl")
    trail = [json.loads(line) for line in out.splitlines()]
    assert code == EXIT_OK and {"queued", "approved", "excluded", "conflict", "applied"} <= {e["event"] for e in trail}
    approved = next(e for e in trail if e["event"] == "approved")
    assert approved["actor"] == "cleo" and any(r["kind"] == "face" for r in approved["after"])
    assert approved["model"] is not None


def test_serve_refuses_a_public_address_unless_asked(workspace: Built, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, workspace, "serve", "--host", "0.0.0.0")
    assert code == EXIT_ERROR and "refusing to listen on 0.0.0.0" in err
