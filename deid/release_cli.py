"""``deid release``: the command in front of :func:`deid.release.build_release`.

Exit codes: 0 published, 1 refused (every failed check is printed with its
items), 2 could not run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deid.errors import DeidError, ReleaseBlocked

EXIT_PUBLISHED, EXIT_REFUSED, EXIT_ERROR = 0, 1, 2


def add_release_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``deid release`` on the CLI's subcommands."""
    release = subparsers.add_parser("release", help="build, check and publish a SCIN-layout release (or refuse)")
    release.add_argument("--workspace", type=Path, required=True, help="the private workspace")
    release.add_argument("--out", type=Path, required=True, help="the release folder to create (must not exist)")
    release.add_argument("--version", required=True, help="release version X.Y.Z (written in every row)")
    release.add_argument(
        "--leave-pending-out", action="store_true", help="leave items waiting for review out (counted)"
    )
    release.add_argument("--require-approval", action="store_true", help="refuse unless --approver names who approved")
    release.add_argument("--approver", default=None, help="the person approving this release (into the manifest)")
    release.add_argument("--config", type=Path, help="deid.toml overlaid on the defaults")
    release.add_argument("--json", action="store_true", help="print the result as JSON")
    release.set_defaults(handler=run_release_command)


def run_release_command(args: argparse.Namespace) -> int:
    """Run the gate; print what was published or every failed check."""
    from deid.config import load_config
    from deid.release import build_release
    from deid.workspace import Workspace, open_ledger

    try:
        if args.require_approval and not (args.approver or "").strip():
            print("deid release: --require-approval needs --approver NAME (or run the release flow)", file=sys.stderr)
            return EXIT_ERROR
        config = load_config(args.config)
        if not args.workspace.is_dir():
            print(f"deid release: no workspace at {args.workspace}", file=sys.stderr)
            return EXIT_ERROR
        workspace = Workspace(args.workspace)
        ledger = open_ledger(workspace, config)
        try:
            report = build_release(
                workspace,
                ledger,
                config,
                out=args.out,
                version=args.version,
                leave_pending_out=args.leave_pending_out,
                approver=args.approver,
            )
        finally:
            ledger.close()
    except ReleaseBlocked as blocked:
        if args.json:
            print(json.dumps({"published": False, "reasons": list(blocked.reasons)}, indent=2))
        else:
            print(f"release {args.version} refused: {len(blocked.reasons)} problem(s)")
            for reason in blocked.reasons:
                print(f"  - {reason}")
            print(f"  (written to {args.workspace / 'release-refusals'})")
        return EXIT_REFUSED
    except DeidError as error:
        print(json.dumps(error.to_json()), file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(
            json.dumps(
                {
                    "published": True,
                    "out": str(report.out),
                    "version": report.version,
                    "cases": report.cases,
                    "images": report.images,
                    "funnel": report.funnel.to_json(),
                },
                indent=2,
            )
        )
    else:
        print(f"published release {report.version} at {report.out}: {report.cases} case(s), {report.images} image(s)")
        print(f"  funnel: {json.dumps(report.funnel.to_json())}")
    return EXIT_PUBLISHED
