"""The data card of a release (``DATA_CARD.html`` and ``DATA_CARD.md``), computed from the release itself.

Every count on the card is read back from the release folder
(``dataset/scin_cases.csv`` and the images) by :func:`card_numbers_from_release`;
only the de-identification funnel and the k-anonymity report come from the
gate, which saw what was left out. The numbers are embedded in the HTML as
JSON (``<script id="card-numbers">``) so the gate can check them
(:func:`read_card_numbers`). Plots are matplotlib (Agg) PNGs embedded as
base64; the Markdown carries the same numbers as tables.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deid.anonymity_check import release_classes
from deid.config import ReleaseSettings
from deid.demographics import AnonymityReport
from deid.detect import make_detection_copy
from deid.errors import InputError
from deid.io import load_image, write_atomic
from deid.scin import load_schema
from deid.skin_tone import estimate_skin_tone

CARD_HTML = "DATA_CARD.html"
CARD_MD = "DATA_CARD.md"
CARD_FILES = (CARD_HTML, CARD_MD)
NOT_ANSWERED = "not answered"
_NUMBERS_ID = "card-numbers"
TONE_SIDE_PX = 256  # the card's tone estimate is an aggregate; a small copy measures it as well


@dataclass(frozen=True, slots=True)
class DataCard:
    """A rendered card: its Markdown, its HTML and the numbers both show."""

    markdown: str
    html: str
    numbers: Mapping[str, object]


def _rows(folder: Path) -> list[dict[str, str]]:
    path = folder / load_schema().cases_file
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return [{k: v or "" for k, v in row.items() if k is not None} for row in csv.DictReader(handle)]
    except OSError as error:
        raise InputError(f"cannot read the release table: {error.strerror}", path=path) from error


def _count(rows: Sequence[Mapping[str, str]], column: str, *, unknown: Sequence[str] = ("",)) -> dict[str, int]:
    counts = Counter(NOT_ANSWERED if row.get(column, "") in unknown else row[column] for row in rows)
    return dict(sorted(counts.items()))


def _with_generalised(rows: Sequence[Mapping[str, str]], column: str, unknown: Sequence[str]) -> dict[str, int]:
    """Counts of a SCIN column, with its deid-generalised value shown (marked) where the SCIN cell is blank."""
    extra = f"{column}_generalised"
    counts: Counter[str] = Counter()
    for row in rows:
        if not row.get(column) and row.get(extra):
            counts[f"{row[extra]} (generalised)"] += 1
        else:
            counts[NOT_ANSWERED if row.get(column, "") in unknown else row[column]] += 1
    return dict(sorted(counts.items()))


def _flags(rows: Sequence[Mapping[str, str]], prefix: str) -> dict[str, int]:
    columns = [c for c in (rows[0] if rows else {}) if c.startswith(prefix)]
    counts = {c.removeprefix(prefix): sum(row.get(c) == "YES" for row in rows) for c in columns}
    counts[NOT_ANSWERED] = sum(not any(row.get(c) == "YES" for c in columns) for row in rows)
    return counts


def card_numbers_from_release(folder: Path) -> dict[str, object]:
    """Every number of the card that the release itself determines.

    Raises
    ------
    InputError
        If the case table or an image cannot be read.
    """
    from deid.config import default_config

    rows = _rows(folder)
    paths = [row[f"image_{i}_path"] for row in rows for i in (1, 2, 3) if row.get(f"image_{i}_path")]
    tones: Counter[str] = Counter()
    tone_vs_self: Counter[str] = Counter()
    settings = default_config().input
    by_path = {row[f"image_{i}_path"]: row for row in rows for i in (1, 2, 3) if row.get(f"image_{i}_path")}
    for path in paths:
        file = folder / path
        if not file.is_file():
            continue
        small, _ = make_detection_copy(load_image(file, settings).pixels, max_side_px=TONE_SIDE_PX)
        band = str(estimate_skin_tone(small).band)
        tones[band] += 1
        reported = (
            by_path[path].get("fitzpatrick_skin_type")
            or by_path[path].get("fitzpatrick_skin_type_generalised")
            or NOT_ANSWERED
        )
        tone_vs_self[f"{reported} / {band}"] += 1
    return {
        "cases": len(rows),
        "images": len(paths),
        "images_per_case": dict(
            sorted(Counter(str(sum(bool(row.get(f"image_{i}_path")) for i in (1, 2, 3))) for row in rows).items())
        ),
        "shot_types": dict(
            sorted(
                Counter(
                    row[f"image_{i}_shot_type"] or NOT_ANSWERED
                    for row in rows
                    for i in (1, 2, 3)
                    if row.get(f"image_{i}_path")
                ).items()
            )
        ),
        "year": _count(rows, "year"),
        "age_group": _with_generalised(rows, "age_group", ("", "AGE_UNKNOWN")),
        "sex_at_birth": _count(rows, "sex_at_birth", unknown=("", "OTHER_OR_UNSPECIFIED")),
        "fitzpatrick_skin_type": _with_generalised(rows, "fitzpatrick_skin_type", ("",)),
        "race_ethnicity": _count(rows, "combined_race"),
        "body_parts": _flags(rows, "body_parts_"),
        "textures": _flags(rows, "textures_"),
        "condition_symptoms": _flags(rows, "condition_symptoms_"),
        "other_symptoms": _flags(rows, "other_symptoms_"),
        "condition_duration": _count(rows, "condition_duration"),
        "estimated_skin_tone": dict(sorted(tones.items())),
        "estimated_tone_vs_self_report": dict(sorted(tone_vs_self.items())),
    }


def read_card_numbers(folder: Path) -> dict[str, object]:
    """The numbers embedded in a release's ``DATA_CARD.html`` (``{}`` when absent or unreadable)."""
    path = folder / CARD_HTML
    if not path.is_file():
        return {}
    text = path.read_text("utf-8")
    start = text.find(f'<script type="application/json" id="{_NUMBERS_ID}">')
    if start < 0:
        return {}
    start = text.index(">", start) + 1
    end = text.index("</script>", start)
    try:
        data = json.loads(html.unescape(text[start:end]))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _bar_png(title: str, counts: Mapping[str, int], *, horizontal: bool = True) -> str:
    # Imported here: only the release gate draws, and matplotlib costs every batch worker 0.5 s
    # and 30 MB at start. A bare Figure renders with Agg and keeps no pyplot state.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, max(1.6, 0.32 * len(counts) + 0.9)))
    axes = figure.subplots()
    labels = list(counts) or ["(none)"]
    values = [int(counts[label]) for label in counts] or [0]
    colours = ["#bbbbbb" if label == NOT_ANSWERED else "#3b6ea8" for label in labels]
    if horizontal:
        axes.barh(labels, values, color=colours)
        axes.invert_yaxis()
    else:
        axes.bar(labels, values, color=colours)
    axes.set_title(title, fontsize=10)
    axes.tick_params(labelsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _funnel_rows(funnel: Mapping[str, object]) -> list[tuple[str, str, int]]:
    """(stage, detail, images) from the gate's funnel; the stages after ``in`` add up to it."""
    rows: list[tuple[str, str, int]] = [
        ("in", "images of contributions not released before", int(str(funnel["images_in"])))
    ]
    for stage, key in (("held", "pending"), ("excluded", "excluded"), ("withheld", "withheld")):
        parts = funnel.get(key, {})
        if isinstance(parts, Mapping):
            rows.extend((stage, str(reason), int(count)) for reason, count in sorted(parts.items()))
    rows.append(("suppressed", "k-anonymity", int(str(funnel["suppressed"]))))
    rows.append(("released", "images in this release", int(str(funnel["released"]))))
    return rows


def build_card(
    folder: Path,
    funnel: Mapping[str, object],
    report: AnonymityReport,
    settings: ReleaseSettings,
    *,
    version: str,
    quasi_identifiers: Sequence[str] = (),
    k_target: int = 0,
) -> DataCard:
    """Render the card of the release in ``folder``.

    Raises
    ------
    InputError
        If the release table or an image cannot be read.
    """
    numbers = card_numbers_from_release(folder)
    rows = _rows(folder)
    qis = tuple(quasi_identifiers or report.quasi_identifiers)
    classes = release_classes(rows, qis)
    anonymity = {
        "k_target": k_target or report.k_target,
        "k_reached_this_release": min(classes.values()) if classes else 0,
        "k_reached_all_releases": report.k_achieved,
        "equivalence_classes": len(classes),
        "cells_generalised": dict(report.cells_generalised),
        "cells_blanked": dict(report.cells_blanked),
        "cases_suppressed": report.cases_suppressed,
    }
    everything = {**numbers, "version": version, "funnel": dict(funnel), "anonymity": anonymity}
    missing = [name for name in ("collection", "consent") if not getattr(settings, name).strip()]
    funnel_rows = _funnel_rows(funnel)
    plots = [
        ("Contributions (cases) per year", numbers["year"]),
        ("Images per case", numbers["images_per_case"]),
        ("Shot types", numbers["shot_types"]),
        ("Age group (self-reported)", numbers["age_group"]),
        ("Sex at birth (self-reported)", numbers["sex_at_birth"]),
        ("Fitzpatrick skin type (self-reported)", numbers["fitzpatrick_skin_type"]),
        ("Race / ethnicity (self-reported)", numbers["race_ethnicity"]),
        ("Estimated skin tone (ITA band, an ESTIMATE from pixels)", numbers["estimated_skin_tone"]),
        ("Self-reported type / estimated tone (estimate)", numbers["estimated_tone_vs_self_report"]),
        ("Body parts", numbers["body_parts"]),
        ("Textures", numbers["textures"]),
        ("Condition symptoms", numbers["condition_symptoms"]),
        ("Other symptoms", numbers["other_symptoms"]),
        ("Condition duration", numbers["condition_duration"]),
        ("De-identification funnel (images)", {f"{s}: {d}": n for s, d, n in funnel_rows}),
    ]
    md = [f"# {settings.title} {version}", ""]
    md += [
        f"{numbers['cases']} cases, {numbers['images']} images, in SCIN's layout "
        "(dataset/scin_cases.csv, dataset/scin_labels.csv, dataset/images/).",
        "",
    ]
    md += [
        "## Collection",
        "",
        settings.collection or "**MISSING: release.collection must be filled in before release.**",
        "",
    ]
    md += ["## Consent", "", settings.consent or "**MISSING: release.consent must be filled in before release.**", ""]
    md += ["## De-identification funnel (images)", "", "| stage | detail | images |", "| --- | --- | --- |"]
    md += [f"| {s} | {d} | {n} |" for s, d, n in funnel_rows]
    md += ["", "## k-anonymity", ""]
    md += [
        f"- quasi-identifiers: {', '.join(qis)}",
        f"- k target {anonymity['k_target']}, smallest class in this release "
        f"{anonymity['k_reached_this_release']}, over all releases {anonymity['k_reached_all_releases']}",
    ]
    md += [
        f"- cells generalised: {json.dumps(anonymity['cells_generalised'])}; "
        f"blanked: {json.dumps(anonymity['cells_blanked'])}; cases suppressed: {report.cases_suppressed}",
        "",
    ]
    for title, counts in plots[:-1]:
        if isinstance(counts, Mapping):
            md += [
                f"## {title}",
                "",
                "| value | count |",
                "| --- | --- |",
                *(f"| {k} | {v} |" for k, v in counts.items()),
                "",
            ]
    md += ["## Known issues", "", *(f"- {issue}" for issue in settings.known_issues or ("None known.",)), ""]
    md += ["## Licence", "", settings.licence, ""]
    if settings.contact:
        md += ["## Contact", "", settings.contact, ""]
    md += ["Estimated skin tone is an automatic estimate from the released pixels, not a label.", ""]
    figures = "\n".join(
        f'<figure><img class="plot" alt="{html.escape(title)}" src="data:image/png;base64,{_bar_png(title, counts)}">'
        f"<figcaption>{html.escape(title)}</figcaption></figure>"
        for title, counts in plots
        if isinstance(counts, Mapping)
    )
    funnel_html = "\n".join(
        f'<tr data-stage="{html.escape(s)}" data-count="{n}">'
        f"<td>{html.escape(s)}</td><td>{html.escape(d)}</td><td>{n}</td></tr>"
        for s, d, n in funnel_rows
    )
    missing_html = "".join(f"<p class='missing'>MISSING: release.{name}</p>" for name in missing)
    title = f"{html.escape(settings.title)} {html.escape(version)}"
    style = "body{font-family:sans-serif;max-width:60em;margin:auto} figure{display:inline-block} td{padding:0 .6em}"
    issues = "".join(f"<li>{html.escape(i)}</li>" for i in settings.known_issues or ("None known.",))
    embedded = html.escape(json.dumps(everything, sort_keys=True), quote=False)
    page = "\n".join(
        [
            "<!doctype html>",
            f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{style}</style></head>',
            f"<body><h1>{title}</h1>",
            f"<p>{numbers['cases']} cases, {numbers['images']} images.</p>",
            f"<h2>Collection</h2><p>{html.escape(settings.collection)}</p>",
            f"<h2>Consent</h2><p>{html.escape(settings.consent)}</p>{missing_html}",
            "<h2>De-identification funnel (images)</h2>",
            '<table id="funnel"><tr><th>stage</th><th>detail</th><th>images</th></tr>',
            f"{funnel_html}</table>",
            f"<h2>k-anonymity</h2><p>Quasi-identifiers: {html.escape(', '.join(qis))}. "
            f"k target {anonymity['k_target']}; smallest class {anonymity['k_reached_this_release']} in this release, "
            f"{anonymity['k_reached_all_releases']} over all releases.</p>",
            f"<p>Cells generalised: {html.escape(json.dumps(anonymity['cells_generalised']))}; "
            f"blanked: {html.escape(json.dumps(anonymity['cells_blanked']))}.</p>",
            f'<h2>Distributions</h2><p>"{NOT_ANSWERED}" is shown as its own (grey) bar. '
            "Estimated skin tone is an automatic estimate.</p>",
            figures,
            f"<h2>Known issues</h2><ul>{issues}</ul>",
            f'<h2>Licence</h2><p id="licence">{html.escape(settings.licence)}</p>',
            f'<script type="application/json" id="{_NUMBERS_ID}">{embedded}</script>',
            "</body></html>",
            "",
        ]
    )
    return DataCard("\n".join(md), page, everything)


def write_card(card: DataCard, folder: Path) -> tuple[Path, Path]:
    """Write ``DATA_CARD.html`` and ``DATA_CARD.md`` into ``folder``.

    Raises
    ------
    DeidError
        If a file cannot be written.
    """
    return write_atomic(folder / CARD_HTML, card.html.encode("utf-8")), write_atomic(
        folder / CARD_MD, card.markdown.encode("utf-8")
    )
