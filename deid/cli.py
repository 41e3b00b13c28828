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
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from deid.errors import DeidError
from deid.types import Status

EXIT_OK = 0
EXIT_FAILURES = 1  # ran, but some files failed or were held
EXIT_ERROR = 2  # could not run (bad config, bad arguments)

Handler = Callable[[argparse.Namespace], int]


def emit(payload: dict[str, Any]) -> None:
    """Print one JSON line to stdout."""
    print(json.dumps(payload, sort_keys=False, default=str), flush=True)


def _cmd_run(args: argparse.Namespace) -> int:
    from deid.cases import read_cases
    from deid.config import load_config
    from deid.ingest import CaseSelection
    from deid.workspace import CASES_FILE, Workspace, check_workspace_free

    # Fail fast, before any flow or server starts: a bad deid.toml, or no usable cases.csv.
    load_config(args.config)
    read_cases(Path(args.input_dir) / CASES_FILE)
    check_workspace_free(Workspace(Path(args.workspace).resolve()))
    CaseSelection(since=args.since)  # a bad --since fails here, before any server starts
    # With no Prefect server configured, the flow starts a temporary one; on a busy 2-core machine it can
    # need more than Prefect's default 20 s to come up, so wait longer unless the operator chose a value.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # mediapipe's and TensorFlow Lite's native loggers print a line per model load in every worker process;
    # an operator needs warnings and errors only (the worker processes inherit these).
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The flow lives outside the library (flows/ wires deid into Prefect); import it only here.
    deidentify = importlib.import_module("flows.deidentify")
    summary = deidentify.run_batch(
        input_dir=str(args.input_dir),
        workspace=str(args.workspace),
        config_path=str(args.config) if args.config else None,
        cluster=args.cluster,
        only=[part.strip() for part in (args.only or "").split(",") if part.strip()],
        since=args.since,
        workers=args.workers,
    )
    if args.json:
        emit(summary.to_json())
    else:
        print(summary.to_text())
    return EXIT_OK


def _cmd_redact(args: argparse.Namespace) -> int:
    from deid.config import load_config
    from deid.detect import build_detectors
    from deid.pipeline import redact_file

    config = load_config(args.config)
    detectors = build_detectors(config)
    status = EXIT_OK
    for file in args.files:
        try:
            result = redact_file(file, config, detectors, out_dir=args.out, preview_dir=args.preview_dir)
        except DeidError as error:  # this file only; the others go on
            status = EXIT_FAILURES
            if args.json:
                emit({"file": str(file), **error.to_json()})
            else:
                print(f"{file}: error: {error}")
            continue
        if result.status is not Status.OK:
            status = EXIT_FAILURES
        if args.json:
            emit(result.to_json())
        else:
            print(f"{file}: {result.verdict} ({result.decision.action}) -> {result.output or 'nothing written'}")
    return status


def _file_error(file: Path, error: DeidError, as_json: bool) -> None:
    """Report one file's error on its own line; the other files go on."""
    if as_json:
        emit({"file": str(file), **error.to_json()})
    else:
        print(f"{file}: error: {error}")


def _cmd_inspect(args: argparse.Namespace) -> int:
    from deid.metadata import inspect_metadata

    status = EXIT_OK
    for file in args.files:
        try:
            report = inspect_metadata(file)
        except DeidError as error:
            status = EXIT_FAILURES
            _file_error(file, error, args.json)
            continue
        if args.json:
            emit(report.to_json())
        else:
            kinds = ", ".join(sorted({container.kind for container in report.containers})) or "none"
            print(f"{file}: {report.format}, {report.frames} frame(s); containers: {kinds}")
            for finding in report.findings:
                print(f"  {finding.category}: {finding.tag} = {finding.value} [{finding.container}]")
            for problem in report.errors:
                print(f"  unparsed: {problem}")
    return status


def _cmd_strip(args: argparse.Namespace) -> int:
    from deid.config import load_config
    from deid.errors import InputError
    from deid.metadata import strip_image, stripped_path

    config = load_config(args.config)
    status = EXIT_OK
    written: dict[Path, Path] = {}  # output -> input, so two inputs with one stem never overwrite each other
    for file in args.files:
        try:
            target = stripped_path(file, args.out, config.output)
            if target in written:
                raise InputError(f"output {target} was already written for {written[target]}", path=file,
                                 hint="rename one of the files or strip it into another folder")  # fmt: skip
            result = strip_image(file, args.out, config.input, config.output)
            written[target] = file
        except DeidError as error:
            status = EXIT_FAILURES
            _file_error(file, error, args.json)
            continue
        if args.json:
            emit(result.to_json())
        else:
            notes = f" ({'; '.join(result.notes)})" if result.notes else ""
            print(f"{file} -> {result.output}{notes}")
    return status


def _cmd_verify(args: argparse.Namespace) -> int:
    from deid.errors import UnreadableImage
    from deid.verify_bytes import verify_clean

    status = EXIT_OK
    for file in args.files:
        try:
            data = file.read_bytes()
        except OSError as error:
            status = EXIT_FAILURES
            _file_error(file, UnreadableImage(f"cannot read file: {error.strerror}", path=file), args.json)
            continue
        report = verify_clean(data, path=file)
        if not report.ok:
            status = EXIT_FAILURES
        if args.json:
            emit(report.to_json())
        else:
            print(f"{file}: {'clean' if report.ok else 'NOT CLEAN'} ({report.format})")
            for problem in report.problems:
                print(f"  {problem}")
    return status


def _cmd_bucket(args: argparse.Namespace) -> int:
    from deid.cases import read_cases
    from deid.config import load_config
    from deid.demographics import bucket_cases

    settings = load_config(args.config).demographics
    cases, problems = read_cases(args.cases)
    table, mapping = bucket_cases(
        cases,
        settings,
        k=args.k,
        release=args.release,
        earlier_csv=args.earlier,
        out=args.out,
        mapping_out=args.mapping,
    )
    held = {**{problem.where: problem.error.reason for problem in problems}, **table.held}
    payload = {"out": str(args.out), "mapping": str(mapping) if mapping else None, **table.report.to_json()}
    payload["rows_unreadable"] = len(problems)
    if args.json:
        emit({**payload, "held": held, "suppressed": table.suppressed})
    else:
        report = table.report
        print(
            f"{args.out}: {report.rows_released} rows, k={report.k_achieved} (target {report.k_target}), "
            f"{report.cases_suppressed} suppressed, {len(held)} held, information loss {report.information_loss:.4f}"
        )
        for where, reason in held.items():
            print(f"  held {where}: {reason}")
    return EXIT_FAILURES if held else EXIT_OK


def _cmd_index(args: argparse.Namespace) -> int:
    from deid.config import load_config
    from deid.match import DiskMatchIndex
    from deid.match.commands import add_files

    config = load_config(args.config)
    if args.index_command == "stats":
        stats = DiskMatchIndex(args.index, readonly=True).stats()
        if args.json:
            emit(stats.to_json())
        else:
            per_reference = f"{stats.bytes_per_reference:.0f} per reference"
            words = f"{stats.vocabulary_words} visual words" if stats.vocabulary_words else "no visual words yet"
            print(f"{args.index}: {stats.references} references, {stats.bytes} bytes ({per_reference}), {words}")
        return EXIT_OK
    status = EXIT_OK
    with DiskMatchIndex(
        args.index, commit_every=config.match.commit_every, reference_features=config.match.reference_features
    ) as index:
        for added in add_files(args.paths, index, config):
            if added.error is not None:
                status = EXIT_FAILURES
            if args.json:
                emit(added.to_json())
            else:
                print(f"{added.file}: {added.status}" + (f" ({added.error})" if added.error else ""))
    return status


def _cmd_match(args: argparse.Namespace) -> int:
    from deid.config import load_config
    from deid.match import DiskMatchIndex
    from deid.match.commands import match_files

    config = load_config(args.config)
    status = EXIT_OK
    for found in match_files(args.files, DiskMatchIndex(args.index, readonly=True), config):
        if found.result is None or found.result.verdict != "none":
            status = EXIT_FAILURES
        if args.json:
            emit(found.to_json())
        elif found.result is None:
            print(f"{found.file}: error: {found.error}")
        else:
            best = found.result.matches[0].match.reference if found.result.matches else "-"
            print(f"{found.file}: {found.result.verdict} ({best})")
    return status


def _detectors_for(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    """The config and the detectors a detect/eval run uses: ``--detector`` names, or the enabled ones."""
    from deid.config import DetectorSettings, load_config
    from deid.detect import DETECTORS, build_detectors
    from deid.errors import ConfigError

    config = load_config(args.config)
    if not args.detector:
        return config, build_detectors(config)
    detectors = []
    for name in args.detector:
        if name not in DETECTORS:
            raise ConfigError(f"unknown detector {name!r}", hint=f"valid detectors: {', '.join(sorted(DETECTORS))}")
        detectors.append(DETECTORS[name](config.detection.detectors.get(name, DetectorSettings())))
    return config, detectors


def _parse_kinds(text: str | None) -> frozenset[Any] | None:
    from deid.errors import ConfigError
    from deid.types import RegionKind

    if not text:
        return None
    try:
        return frozenset(RegionKind(kind.strip()) for kind in text.split(",") if kind.strip())
    except ValueError:
        raise ConfigError(f"unknown kind in {text!r}", hint=f"use {', '.join(k.value for k in RegionKind)}") from None


def _cmd_detect(args: argparse.Namespace) -> int:
    from deid.detect import detect_regions
    from deid.io import load_image

    kinds = _parse_kinds(args.kinds)
    config, detectors = _detectors_for(args)
    status = EXIT_OK
    for file in args.files:
        try:
            loaded = load_image(file, config.input)
            regions = detect_regions(loaded.pixels, detectors, max_side_px=config.detection.max_side_px, kinds=kinds)
        except DeidError as error:  # this file only; the others go on
            status = EXIT_FAILURES
            if args.json:
                emit({"file": str(file), "error": str(error)})
            else:
                print(f"{file}: error: {error}")
            continue
        if args.json:
            # The note (e.g. text read on the image) is private: it goes to the ledger, not stdout.
            found = [{key: value for key, value in r.to_json().items() if key != "note"} for r in regions]
            emit({"file": str(file), "width": loaded.width, "height": loaded.height, "regions": found})
        else:
            print(f"{file}: {loaded.width}x{loaded.height}, {len(regions)} region(s)")
            for region in regions:
                print(f"  {region.kind} {region.box.to_xywh()} score {region.score:.2f} {region.source}")
    return status


def _cmd_eval(args: argparse.Namespace) -> int:
    from deid.errors import ConfigError
    from deid.evaluate import LABEL_FILES, evaluate_folder

    labelled = {kind for kind, (name, _) in LABEL_FILES.items() if (args.folder / name).is_file()}
    kinds = sorted(_parse_kinds(args.kind) or labelled)
    if not kinds:
        names = ", ".join(name for name, _ in LABEL_FILES.values())
        raise ConfigError(f"no labels in {args.folder}", hint=f"expected one of {names}")
    config, detectors = _detectors_for(args)
    for kind in kinds:
        report = evaluate_folder(
            args.folder,
            detectors,
            kind=kind,
            max_side_px=config.detection.max_side_px,
            min_score=config.policy.rule_for(kind).review_score,
            input_settings=config.input,
        )
        if args.json:
            emit(report.to_json())
        else:

            def percent(value: float | None) -> str:
                return "n/a" if value is None else f"{value:.1%}"

            print(
                f"{kind}: recall {percent(report.recall)} precision {percent(report.precision)} "
                f"false alarms {len(report.false_alarm_images)} ({percent(report.false_alarm_rate)}) "
                f"{report.seconds_per_image:.2f} s/image"
            )
            for image in report.images:
                for box in image.missed:
                    print(f"  missed {image.file} {box.to_xywh()}")
                if image.label.positive and not image.flagged and not image.missed:
                    print(f"  missed {image.file}")
            for file in report.false_alarm_images:
                print(f"  false alarm {file}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="deid", description="De-identify crowdsourced medical photos for release.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the deidentify flow on a contributions folder")
    run.add_argument("input_dir", type=Path, help="folder with cases.csv and images/")
    run.add_argument(
        "--workspace", type=Path, default=Path("workspace"), help="private workspace (default ./workspace)"
    )
    run.add_argument("--config", type=Path, help="deid.toml overlaid on the defaults")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.add_argument("--cluster", help="fan out on a Dask cluster: a scheduler address (tcp://host:8786) or 'local'")
    run.add_argument("--workers", type=int, default=2, help="worker processes for a local run (default 2)")
    run.add_argument("--only", metavar="ID,...", help="process only these contribution ids (a partial rerun)")
    run.add_argument("--since", metavar="DATE", help="process only contributions submitted on or after this date")
    run.set_defaults(handler=_cmd_run)

    redact = commands.add_parser("redact", help="detect, apply the policy and write releasable copies of loose files")
    redact.add_argument("files", type=Path, nargs="+", metavar="FILE", help="image files")
    redact.add_argument("--out", type=Path, required=True, help="folder for released results (same stem)")
    redact.add_argument("--config", type=Path, help="deid.toml overlaid on the defaults")
    redact.add_argument("--preview-dir", type=Path, help="private folder for before/after previews")
    redact.add_argument("--json", action="store_true", help="print one JSON line per file")
    redact.set_defaults(handler=_cmd_redact)

    inspect = commands.add_parser("inspect", help="list metadata containers and identifying findings in files")
    inspect.add_argument("files", type=Path, nargs="+", metavar="FILE", help="image files")
    inspect.add_argument("--json", action="store_true", help="print one JSON line per file")
    inspect.set_defaults(handler=_cmd_inspect)

    strip = commands.add_parser("strip", help="write metadata-free, upright copies (fresh encode) into a folder")
    strip.add_argument("files", type=Path, nargs="+", metavar="FILE", help="image files")
    strip.add_argument("--out", type=Path, required=True, help="folder for the copies (same stem)")
    strip.add_argument("--config", type=Path, help="deid.toml overlaid on the defaults ([input], [output])")
    strip.add_argument("--json", action="store_true", help="print one JSON line per file")
    strip.set_defaults(handler=_cmd_strip)

    verify = commands.add_parser("verify", help="check byte by byte that files carry no metadata or extra frames")
    verify.add_argument("files", type=Path, nargs="+", metavar="FILE", help="image files")
    verify.add_argument("--json", action="store_true", help="print one JSON line per file")
    verify.set_defaults(handler=_cmd_verify)

    bucket = commands.add_parser("bucket", help="bucket, mitigate and k-anonymise a contributions cases.csv (SCIN)")
    bucket.add_argument("cases", type=Path, metavar="CASES_CSV", help="raw contributions CSV")
    bucket.add_argument("--out", type=Path, required=True, help="release cases.csv to write")
    bucket.add_argument("--k", type=int, help="k-anonymity target (default: demographics.k)")
    bucket.add_argument("--release", default="1.0.0", help="release id for the release column (default 1.0.0)")
    bucket.add_argument("--earlier", type=Path, help="cases.csv of earlier releases: fixed, counted toward k")
    bucket.add_argument("--mapping", type=Path, help="PRIVATE csv: contribution_id, case_id, image names given")
    bucket.add_argument("--config", type=Path, help="deid.toml overlaid on the defaults")
    bucket.add_argument("--json", action="store_true", help="print the report as JSON")
    bucket.set_defaults(handler=_cmd_bucket)

    index = commands.add_parser("index", help="build or inspect a public-copy match index")
    index_commands = index.add_subparsers(dest="index_command", required=True, metavar="INDEX_COMMAND")
    index_add = index_commands.add_parser("add", help="fingerprint images into the index (incremental)")
    index_add.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="image files or folders")
    index_stats = index_commands.add_parser("stats", help="count, bytes and bytes per reference")
    for sub in (index_add, index_stats):
        sub.add_argument("--index", type=Path, required=True, help="index folder (created by `index add`)")
        sub.add_argument("--config", type=Path, help="deid.toml overlaid on the defaults ([match])")
        sub.add_argument("--json", action="store_true", help="print JSON lines")
        sub.set_defaults(handler=_cmd_index)

    match = commands.add_parser("match", help="check files against a match index: public copies and near misses")
    match.add_argument("files", type=Path, nargs="+", metavar="FILE", help="image files")
    match.add_argument("--index", type=Path, required=True, help="index folder built with `deid index add`")
    match.add_argument("--config", type=Path, help="deid.toml overlaid on the defaults ([match])")
    match.add_argument("--json", action="store_true", help="print one JSON line per file")
    match.set_defaults(handler=_cmd_match)

    detect = commands.add_parser("detect", help="find identifying regions (faces, text, people, ...) in files")
    detect.add_argument("files", type=Path, nargs="+", metavar="FILE", help="image files")
    detect.add_argument("--kinds", help="comma-separated kinds to keep (face,text,tattoo,person,sensitive_body)")
    detect.add_argument("--detector", action="append", help="a registered detector to run (repeatable)")
    detect.add_argument("--config", type=Path, help="deid.toml overlaid on the defaults")
    detect.add_argument("--json", action="store_true", help="print one JSON line per file")
    detect.set_defaults(handler=_cmd_detect)

    evaluate = commands.add_parser("eval", help="score detectors against a labelled folder (devdata format)")
    evaluate.add_argument("folder", type=Path, metavar="DIR", help="folder with images and labels_<kind>.json")
    evaluate.add_argument("--kind", help="face, text or tattoo (default: every kind labelled in DIR)")
    evaluate.add_argument("--detector", action="append", help="a registered detector to run (repeatable)")
    evaluate.add_argument("--config", type=Path, help="deid.toml overlaid on the defaults")
    evaluate.add_argument("--json", action="store_true", help="print one JSON line per kind")
    evaluate.set_defaults(handler=_cmd_eval)

    from deid.review.cli import add_review_commands  # the review queue's commands live with it

    add_review_commands(commands)
    from deid.release_cli import add_release_command  # the release gate's command lives beside the gate

    add_release_command(commands)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``deid`` console script."""
    args = build_parser().parse_args(argv)
    if args.verbose:  # otherwise Python's last-resort handler prints warnings and errors to stderr
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    handler: Handler = args.handler
    try:
        return handler(args)
    except DeidError as error:
        print(json.dumps(error.to_json()), file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
