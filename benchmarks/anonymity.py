"""k-anonymity benchmark: time, information loss and peak memory on 100,000 generated cases.

Generates cases with skewed (Zipf-like) answers, a share of missing ones, rare
sex answers and rare race combinations, then for each k runs
:func:`deid.demographics.build_release_table` with the default ``[demographics]``
settings and prints:

* wall time of the whole table build (mapping, mitigation, k-anonymity) and of
  the k-anonymity engine alone (:func:`deid.anonymity.enforce_k_anonymity`);
* k achieved (checked by an independent count of the output classes), rows
  suppressed, cells generalised and blanked;
* information loss (mean normalised certainty penalty added per
  quasi-identifier cell) and the discernibility metric;
* peak memory: the process's maximum resident set size, and the peak of Python
  allocations (``tracemalloc``) during one table build.

Run ``python benchmarks/anonymity.py`` (about a minute) or ``--cases 20000``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import resource
import time
import tracemalloc
from collections import Counter

import numpy as np

from deid.anonymity import enforce_k_anonymity
from deid.config import load_config
from deid.demographics import RACE_QI, build_hierarchies, build_release_table, combined_race
from deid.ids import new_case_id
from deid.types import Case, CaseImage, ShotType

RACES: list[tuple[tuple[str, ...], float]] = [
    (("white",), 40),
    (("asian",), 15),
    (("black",), 12),
    (("hispanic",), 10),
    ((), 10),
    (("middle eastern",), 3),
    (("white", "asian"), 3),
    (("black", "white"), 2),
    (("hispanic", "white"), 2),
    (("native hawaiian",), 1),
    (("american indian",), 1),
    (("prefer not to say",), 1.5),
    (("american indian", "white"), 0.3),
    (("mena", "black", "asian"), 0.1),
    (("pacific islander", "asian", "white"), 0.05),
]


def generate_cases(count: int, seed: int) -> list[Case]:
    """Skewed self-reported answers, vectorised with numpy, then wrapped in ``Case`` records."""
    rng = np.random.default_rng(seed)
    ages_pool = np.arange(14, 100)
    age_weights = 1.0 / (1 + np.abs(ages_pool - 32) / 9) ** 2
    ages = rng.choice(ages_pool, size=count, p=age_weights / age_weights.sum())
    missing_age = rng.random(count) < 0.06
    sexes = rng.choice(
        ["female", "male", "other", "prefer not to say", "", "intersex"],
        size=count,
        p=[0.55, 0.35, 0.01, 0.02, 0.0699, 0.0001],
    )
    skins = rng.choice(
        ["1", "2", "3", "4", "5", "6", "none of the above", ""],
        size=count,
        p=[0.07, 0.2, 0.26, 0.17, 0.08, 0.05, 0.07, 0.1],
    )
    weights = np.array([weight for _, weight in RACES])
    races = rng.choice(len(RACES), size=count, p=weights / weights.sum())
    years = rng.choice([2022, 2023, 2024], size=count, p=[0.2, 0.5, 0.3])
    categories = rng.choice(["RASH", "ACNE", "GROWTH_OR_MOLE", "NAIL_PROBLEM", "HAIR_LOSS", ""], size=count)
    race_sets = [frozenset(answers) for answers, _ in RACES]
    return [
        Case(
            contribution_id=f"c{index}",
            submitted_at=f"{years[index]}-06-01T12:00:00Z",
            age=None if missing_age[index] else int(ages[index]),
            sex=str(sexes[index]) or None,
            skin_type=str(skins[index]) or None,
            race_ethnicity=race_sets[races[index]],
            body_parts=frozenset({"arm"}),
            related_category=str(categories[index]) or None,
            images=(CaseImage(f"{index}.jpg", ShotType.CLOSE_UP),),
        )
        for index in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--k", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()

    base = load_config().demographics
    start = time.perf_counter()
    cases = generate_cases(args.cases, args.seed)
    case_ids = {case.contribution_id: new_case_id() for case in cases}
    image_paths = {case.contribution_id: [(f"images/{index}.png", "CLOSE_UP")] for index, case in enumerate(cases)}
    print(f"generated {len(cases):,} cases in {time.perf_counter() - start:.2f} s")

    for k in args.k:
        settings = dataclasses.replace(base, k=k)
        gc.collect()
        start = time.perf_counter()
        table = build_release_table(cases, settings, case_ids=case_ids, image_paths=image_paths, release="1.0.0")
        build_seconds = time.perf_counter() - start
        report = table.report

        # The engine alone, on the same mitigated values the build fed it.
        qis = settings.quasi_identifiers
        mitigated = build_release_table(
            cases, dataclasses.replace(settings, k=1), case_ids=case_ids, image_paths=image_paths, release="1.0.0"
        ).rows
        tuples = [tuple(_qi(row, name) for name in qis) for row in mitigated]
        start = time.perf_counter()
        enforce_k_anonymity(tuples, quasi_identifiers=qis, hierarchies=build_hierarchies(settings), k=k)
        engine_seconds = time.perf_counter() - start

        classes = Counter(tuple(_qi(row, name) for name in qis) for row in table.rows)
        independent_k = min(classes.values()) if classes else 0
        print(f"\nk = {k}")
        print(f"  build_release_table     {build_seconds:8.2f} s   ({args.cases / build_seconds:,.0f} cases/s)")
        print(f"  k-anonymity engine      {engine_seconds:8.2f} s")
        print(f"  k achieved              {report.k_achieved:8d}   (independent count: {independent_k})")
        print(
            f"  rows released           {report.rows_released:8d}   "
            f"held {report.cases_held}, suppressed {report.cases_suppressed}"
        )
        print(f"  cells generalised       {sum(report.cells_generalised.values()):8d}   {report.cells_generalised}")
        print(f"  cells blanked           {sum(report.cells_blanked.values()):8d}   {report.cells_blanked}")
        print(f"  information loss (NCP)  {report.information_loss:8.5f}")
        print(f"  discernibility          {report.discernibility:,}")
        print(f"  equivalence classes     {report.equivalence_classes:8d}")
        print(f"  sex merged {report.sex_merged}, race combinations merged {report.race_combinations_merged}")
        del table, mitigated, tuples

    gc.collect()
    tracemalloc.start()
    build_release_table(
        cases, dataclasses.replace(base, k=args.k[0]), case_ids=case_ids, image_paths=image_paths, release="1.0.0"
    )
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    max_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak Python allocations during one build (tracemalloc): {peak / 2**20:.0f} MiB")
    print(f"peak resident set size of the process (incl. the generated cases): {max_rss_mib:.0f} MiB")


def _qi(row: dict[str, str], name: str) -> str:
    if name == RACE_QI:
        chosen = {
            key.removeprefix("race_ethnicity_")
            for key, value in row.items()
            if key.startswith("race_ethnicity_") and value
        }
        return combined_race(chosen)
    return row[name]


if __name__ == "__main__":
    main()
