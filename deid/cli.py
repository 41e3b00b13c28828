"""The ``deid`` command line.

Each subcommand is a ``_cmd_<name>(args) -> int`` handler plus a few lines in
:func:`build_parser`; handlers are thin calls into the library. Commands that
take several files print one JSON line per file with ``--json``. A
:class:`~deid.errors.DeidError` becomes exit code 2 and a JSON error object on
stderr; a per-file error is reported on that file's line and the other files go on.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from deid.errors import DeidError

EXIT_OK = 0
EXIT_FAILURES = 1  # ran, but some files failed or were held
EXIT_ERROR = 2  # could not run (bad config, bad arguments)

Handler = Callable[[argparse.Namespace], int]


def emit(payload: dict[str, Any]) -> None:
    """Print one JSON line to stdout."""
    print(json.dumps(payload, sort_keys=False, default=str), flush=True)


def _cmd_run(args: argparse.Namespace) -> int:
    # The flow lives outside the library (flows/ wires deid into Prefect); import it only here.
    deidentify = importlib.import_module("flows.deidentify")
    summary = deidentify.run_batch(
        input_dir=str(args.input_dir),
        workspace=str(args.workspace),
        config_path=str(args.config) if args.config else None,
    )
    if args.json:
        emit(summary.to_json())
    else:
        print(summary.to_text())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="deid", description="De-identify crowdsourced medical photos for release.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the deidentify flow on a contributions folder")
    run.add_argument("input_dir", type=Path, help="folder with cases.csv and images/")
    run.add_argument("--workspace", type=Path, default=Path("workspace"), help="private workspace (default ./workspace)")
    run.add_argument("--config", type=Path, help="deid.toml overlaid on the defaults")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.set_defaults(handler=_cmd_run)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``deid`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    handler: Handler = args.handler
    try:
        return handler(args)
    except DeidError as error:
        print(json.dumps(error.to_json()), file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
