"""Public-copy matching benchmark: recall and precision per transformation, index size and query latency.

Builds transformed copies of the 24 ``neardup`` photos in ../shared/devdata
(the "public" references), indexes the originals among >= 10,000 unrelated
distractors (generated images, and crops/flips/colour shifts of the other
devdata folders and skimage.data), queries every copy and a set of unrelated
images through :func:`deid.match.match_image` with the default ``[match]``
settings, and prints:

* recall of true copies (verdict ``public_copy`` naming the right original) per
  transformation, and recall counting ``review`` (held) as caught;
* precision of reported ``public_copy`` matches;
* index build time, bytes per reference, and query latency;
* index query latency p50/p95 at 1,000,000 synthetic references on one core.

Run ``python benchmarks/match.py`` (a few minutes) or ``--quick`` (under a minute).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import imagehash
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from deid.config import load_config
from deid.match import DiskMatchIndex, MatchEvidence, Verdict, compute_fingerprints, match_image
from deid.match.fingerprint import thumbnail

REPO = Path(__file__).resolve().parents[1]
DEVDATA = Path(os.environ.get("DEID_DEVDATA", REPO.parent / "shared" / "devdata"))

Transform = Callable[[Image.Image, random.Random], Image.Image]


# --- transformations of a true copy ------------------------------------------------------------


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _resize(image: Image.Image, factor: float) -> Image.Image:
    return image.resize(
        (max(8, round(image.width * factor)), max(8, round(image.height * factor))), Image.Resampling.BICUBIC
    )


def _crop(image: Image.Image, rng: random.Random, removed: float) -> Image.Image:
    keep = 1.0 - removed
    aspect = rng.uniform(0.8, 1.25)
    fx = min(1.0, (keep * aspect) ** 0.5)
    fy = min(1.0, keep / fx)
    width, height = round(image.width * fx), round(image.height * fy)
    left = rng.randint(0, image.width - width)
    top = rng.randint(0, image.height - height)
    return image.crop((left, top, left + width, top + height))


def _gamma(image: Image.Image, gamma: float) -> Image.Image:
    table = [round(255 * (i / 255) ** gamma) for i in range(256)] * 3
    return image.point(table)


def _caption(image: Image.Image, rng: random.Random) -> Image.Image:
    band = max(24, image.height // 8)
    canvas = Image.new("RGB", (image.width, image.height + band), "white")
    canvas.paste(image, (0, 0) if rng.random() < 0.5 else (0, band))
    top = image.height if canvas.getpixel((0, 0)) != (255, 255, 255) else 0
    text = rng.choice(
        ["look at this rash!!", "day 3 - still itchy", "found this online lol", "Dermatology atlas fig. 12"]
    )
    ImageDraw.Draw(canvas).text((8, top + band // 3), text, fill="black")
    return canvas


def _screenshot(image: Image.Image, rng: random.Random) -> Image.Image:
    # A phone screenshot: the photo letterboxed on a dark canvas with a status bar and a toolbar.
    width = image.width
    height = round(width * rng.uniform(1.8, 2.2))
    canvas = Image.new("RGB", (width, max(height, image.height + 80)), (18, 18, 18))
    canvas.paste(image, (0, (canvas.height - image.height) // 2))
    draw = ImageDraw.Draw(canvas)
    draw.text((8, 6), "12:41  4G  87%", fill=(230, 230, 230))
    draw.rectangle((0, canvas.height - 40, width, canvas.height), fill=(40, 40, 40))
    draw.text((8, canvas.height - 28), "Share   Edit   Delete", fill=(230, 230, 230))
    return canvas


TRANSFORMS: dict[str, Transform] = {
    "identical": lambda im, rng: im,
    "resize_25": lambda im, rng: _resize(im, 0.25),
    "resize_50": lambda im, rng: _resize(im, 0.5),
    "resize_200": lambda im, rng: _resize(im, 2.0),
    "jpeg_30": lambda im, rng: _jpeg(im, 30),
    "jpeg_60": lambda im, rng: _jpeg(im, 60),
    "jpeg_95": lambda im, rng: _jpeg(im, 95),
    "crop_10": lambda im, rng: _crop(im, rng, 0.10),
    "crop_20": lambda im, rng: _crop(im, rng, 0.20),
    "crop_30": lambda im, rng: _crop(im, rng, 0.30),
    "rot90": lambda im, rng: im.transpose(Image.Transpose.ROTATE_90),
    "rot180": lambda im, rng: im.transpose(Image.Transpose.ROTATE_180),
    "rot270": lambda im, rng: im.transpose(Image.Transpose.ROTATE_270),
    "mirror": lambda im, rng: ImageOps.mirror(im),
    "bright+30": lambda im, rng: ImageEnhance.Brightness(im).enhance(1.3),
    "bright-30": lambda im, rng: ImageEnhance.Brightness(im).enhance(0.7),
    "contrast+30": lambda im, rng: ImageEnhance.Contrast(im).enhance(1.3),
    "contrast-30": lambda im, rng: ImageEnhance.Contrast(im).enhance(0.7),
    "gamma+30": lambda im, rng: _gamma(im, 1.3),
    "gamma-30": lambda im, rng: _gamma(im, 0.7),
    "grayscale": lambda im, rng: im.convert("L").convert("RGB"),
    "border": lambda im, rng: ImageOps.expand(
        im, border=max(4, im.width // rng.randint(12, 25)), fill=rng.choice(["white", "black"])
    ),
    "caption": _caption,
    "screenshot": _screenshot,
    "mirror+jpeg50+resize70": lambda im, rng: _jpeg(_resize(ImageOps.mirror(im), 0.7), 50),
}


# --- distractors --------------------------------------------------------------------------------


def generated_image(seed: int) -> np.ndarray:
    """An unrelated synthetic image: smooth noise, shapes, gradients and texture (deterministic by seed)."""
    rng = np.random.default_rng(seed)
    height, width = int(rng.integers(160, 320)), int(rng.integers(160, 320))
    kind = seed % 4
    if kind == 0:  # smooth random field
        coarse = rng.integers(0, 256, (int(rng.integers(3, 12)), int(rng.integers(3, 12)), 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    else:
        background = tuple(int(v) for v in rng.integers(0, 256, 3))
        image = Image.new("RGB", (width, height), background)
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(3, 25))):
            x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
            x1, y1 = x0 + int(rng.integers(10, width)), y0 + int(rng.integers(10, height))
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            if rng.random() < 0.5:
                draw.ellipse((x0, y0, x1, y1), fill=colour)
            else:
                draw.rectangle((x0, y0, x1, y1), fill=colour)
    pixels = np.asarray(image, dtype=np.float32)
    if kind == 3:  # texture noise
        pixels += rng.normal(0, 25, pixels.shape)
    if kind == 2:  # gradient
        pixels *= np.linspace(0.5, 1.2, width)[None, :, None]
    return np.clip(pixels, 0, 255).astype(np.uint8)


def real_sources() -> list[tuple[str, np.ndarray]]:
    """Real photos unrelated to neardup: the other devdata folders and skimage.data (at most 384 px)."""
    sources: list[tuple[str, np.ndarray]] = []
    for folder in ("faces", "text", "tattoos", "metadata"):
        for path in sorted((DEVDATA / folder).glob("*")):
            if path.suffix.lower() not in {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"}:
                continue
            try:
                with Image.open(path) as opened:
                    opened.draft("RGB", (384, 384))
                    pixels = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
            except (OSError, ValueError):
                continue
            sources.append((f"{folder}/{path.name}", thumbnail(pixels, 384)))
    from skimage import data

    for name in (
        "astronaut",
        "camera",
        "coffee",
        "chelsea",
        "rocket",
        "coins",
        "page",
        "text",
        "moon",
        "hubble_deep_field",
        "immunohistochemistry",
        "retina",
        "skin",
        "motorcycle_left",
        "cat",
        "colorwheel",
        "logo",
        "horse",
        "clock",
        "grass",
        "gravel",
        "brick",
    ):
        try:
            pixels = np.asarray(getattr(data, name)())
        except Exception:
            continue
        if pixels.dtype == bool:
            pixels = pixels.astype(np.uint8) * 255
        if pixels.ndim == 2:
            pixels = np.stack([pixels] * 3, axis=2)
        sources.append((f"skimage/{name}", thumbnail(np.ascontiguousarray(pixels[..., :3].astype(np.uint8)), 384)))
    return _distinct(sources)


def _distinct(sources: list[tuple[str, np.ndarray]]) -> list[tuple[str, np.ndarray]]:
    """Drop sources that are copies of an earlier one (e.g. PngSuite's one picture in many encodings)."""
    kept: list[tuple[str, np.ndarray]] = []
    hashes: list[imagehash.ImageHash] = []
    for name, pixels in sources:
        code = imagehash.phash(Image.fromarray(pixels))
        if all(code - other > 6 for other in hashes):
            kept.append((name, pixels))
            hashes.append(code)
    return kept


def real_variant(pixels: np.ndarray, seed: int) -> np.ndarray:
    """A crop / flip / colour variant of a real photo (deterministic by seed)."""
    rng = np.random.default_rng(seed)
    height, width = pixels.shape[:2]
    fx, fy = rng.uniform(0.35, 0.9, 2)
    left, top = (
        int(rng.integers(0, max(1, int(width * (1 - fx))))),
        int(rng.integers(0, max(1, int(height * (1 - fy))))),
    )
    out = pixels[top : top + max(16, int(height * fy)), left : left + max(16, int(width * fx))].astype(np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    out = out * rng.uniform(0.6, 1.4, 3)[None, None, :] + rng.uniform(-30, 30)
    return np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8))


# --- benchmark ----------------------------------------------------------------------------------


def _describe(query: str, evidence: MatchEvidence) -> str:
    status = evidence.verification.note if evidence.verification else "unverified"
    return f"{query} -> {evidence.match.reference} d={evidence.match.distance:g} {evidence.match.method} [{status}]"


def _partners(method: str) -> int:
    """Descriptor partners of a feature match (method ``orb:<partners>``)."""
    return int(method.split(":", 1)[1])


def _synthetic_descriptors(pool: np.ndarray, rng: np.random.Generator, count: int, per_reference: int) -> np.ndarray:
    """Descriptors of ``count`` synthetic references: real descriptors with about 6 % of their bits flipped.

    Real descriptors are far from uniform (corners look alike), so random bits would make
    the inverted file's lists unrealistically even; these keep the real distribution.
    """
    noise_bits = (rng.random((1 << 14, 256)) < 0.06).astype(np.uint8)
    noise = np.packbits(noise_bits, axis=1)
    rows = pool[rng.integers(0, len(pool), count * per_reference)]
    flips = noise[rng.integers(0, len(noise), count * per_reference)]
    return (rows ^ flips).reshape(count, per_reference, 32)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 distractors and 100,000 synthetic references")
    parser.add_argument("--distractors", type=int, default=10_000)
    parser.add_argument("--latency-references", type=int, default=1_000_000)
    parser.add_argument("--unrelated-queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.quick:
        args.distractors, args.latency_references, args.unrelated_queries = 2_000, 100_000, 100
    if not (DEVDATA / "neardup").is_dir():
        print(f"devdata not found at {DEVDATA}", file=sys.stderr)
        return 2
    settings = load_config().match
    rng = random.Random(args.seed)

    originals = {str(path): Image.open(path).convert("RGB") for path in sorted((DEVDATA / "neardup").glob("*.jpg"))}
    sources = real_sources()
    real_count = min(args.distractors // 4, 40 * len(sources))
    distractor_names = [f"real:{i}" for i in range(real_count)] + [
        f"gen:{i}" for i in range(args.distractors - real_count)
    ]

    def distractor(name: str) -> np.ndarray:
        kind, number = name.split(":")
        if kind == "gen":
            return generated_image(int(number))
        source = sources[int(number) % len(sources)][1]
        return real_variant(source, int(number))

    def load_reference(name: str) -> np.ndarray:
        if name in originals:
            return np.asarray(originals[name])
        return distractor(name)

    print(
        f"references: {len(originals)} originals + {len(distractor_names)} distractors "
        f"({real_count} variants of {len(sources)} real photos, the rest generated)"
    )

    with tempfile.TemporaryDirectory(prefix="deid-match-bench-") as workdir:
        # Build the index: originals mixed among distractors.
        names = list(originals) + distractor_names
        rng.shuffle(names)
        fingerprint_s = 0.0
        started = time.perf_counter()
        pool: list[np.ndarray] = []  # real reference descriptors, to make synthetic references look real
        with DiskMatchIndex(
            Path(workdir) / "index", commit_every=settings.commit_every, reference_features=settings.reference_features
        ) as index:
            for name in names:
                t0 = time.perf_counter()
                prints = compute_fingerprints(load_reference(name), settings)
                fingerprint_s += time.perf_counter() - t0
                index.add(name, prints)
                pool.append(prints.descriptors[: settings.reference_features])
        build_s = time.perf_counter() - started
        index = DiskMatchIndex(Path(workdir) / "index", readonly=True)
        stats = index.stats()
        print(
            f"index build: {build_s:.1f} s for {stats.references} references "
            f"({fingerprint_s / stats.references * 1000:.1f} ms/reference fingerprinting, "
            f"{(build_s - fingerprint_s) / stats.references * 1000:.2f} ms/reference indexing); "
            f"{stats.entries} entries, {stats.segments} segments, "
            f"{stats.bytes_per_reference:.0f} bytes/reference on disk"
        )

        # Queries: every transformation of every original, and unrelated images.
        per_transform: dict[str, list[tuple[Verdict, bool, bool]]] = defaultdict(list)
        reported = correct = 0
        unrelated_flagged = unrelated_review = 0
        match_ms: list[float] = []
        query_ms: list[float] = []
        feature_ms: list[float] = []
        true_partners: list[int] = []
        other_partners: list[int] = []
        misses: list[str] = []
        false_reports: list[str] = []
        review_reasons: list[str] = []
        true_inliers: list[int] = []
        false_inliers: list[int] = []
        queries = [(t, name) for t in TRANSFORMS for name in originals]
        for transform, name in queries:
            copy = np.asarray(TRANSFORMS[transform](originals[name], rng).convert("RGB"))
            t0 = time.perf_counter()
            prints = compute_fingerprints(copy, settings)
            t1 = time.perf_counter()
            index.query(prints, max_distance_bits=settings.review_distance_bits)
            query_ms.append((time.perf_counter() - t1) * 1000)
            t2 = time.perf_counter()
            similar = index.similar(prints, shortlist=settings.feature_shortlist, min_matches=4)
            feature_ms.append((time.perf_counter() - t2) * 1000)
            true_partners.append(max((_partners(m.method) for m in similar if m.reference == name), default=0))
            other_partners.extend(_partners(m.method) for m in similar if m.reference != name)
            t3 = time.perf_counter()
            result = match_image(copy, index, settings, load_reference=load_reference, fingerprints=prints)
            match_ms.append((time.perf_counter() - t3) * 1000 + (t1 - t0) * 1000 - query_ms[-1])
            copies = [e for e in result.matches if e.verdict is Verdict.PUBLIC_COPY]
            reported += len(copies)
            for evidence in result.matches:
                if evidence.verification is not None and evidence.verification.good_matches:
                    inliers = evidence.verification.inliers
                    (true_inliers if evidence.match.reference == name else false_inliers).append(inliers)
            right = [e for e in copies if e.match.reference == name]
            correct += len(right)
            false_reports.extend(
                _describe(f"{transform}:{Path(name).name}", e) for e in copies if e.match.reference != name
            )
            held = any(e.match.reference == name and e.verdict is Verdict.REVIEW for e in result.matches)
            per_transform[transform].append((result.verdict, bool(right), bool(right) or held))
            if not right:
                best = min((e.match.distance for e in result.matches if e.match.reference == name), default=None)
                misses.append(f"{transform}:{Path(name).name}:{result.verdict}:d={best}")
        for i in range(args.unrelated_queries):
            if i % 2:
                pixels = generated_image(10_000_000 + i)
            else:
                # Held-out real photos: skimage/devdata sources under a different crop than any reference.
                pixels = real_variant(sources[i % len(sources)][1], 50_000_000 + i)
            result = match_image(pixels, index, settings, load_reference=load_reference)
            copies = [e for e in result.matches if e.verdict is Verdict.PUBLIC_COPY]
            # A variant of the same real photo is a genuine near-duplicate, not a false match.
            same_source = [
                e
                for e in copies
                if i % 2 == 0
                and e.match.reference.startswith("real:")
                and int(e.match.reference.split(":")[1]) % len(sources) == i % len(sources)
            ]
            wrong = [e for e in copies if e not in same_source]
            reported += len(wrong)
            false_reports.extend(_describe(f"unrelated:{i}", e) for e in wrong)
            unrelated_flagged += bool(wrong)
            unrelated_review += result.verdict is Verdict.REVIEW
            if result.verdict is Verdict.REVIEW:
                review_reasons.extend(_describe(f"unrelated:{i}", e) for e in result.matches[:1])

        print(f"\n{'transformation':24s} {'n':>4s} {'recall':>7s} {'+review':>8s}")
        total = caught = held = 0
        for transform, rows in per_transform.items():
            n = len(rows)
            hits = sum(r[1] for r in rows)
            hits_or_held = sum(r[2] for r in rows)
            total, caught, held = total + n, caught + hits, held + hits_or_held
            print(f"{transform:24s} {n:4d} {hits / n:7.3f} {hits_or_held / n:8.3f}")
        print(f"{'ALL':24s} {total:4d} {caught / total:7.3f} {held / total:8.3f}")
        precision = correct / reported if reported else 1.0
        print(f"\nprecision of reported public_copy matches: {precision:.4f} ({correct}/{reported})")
        print(
            f"unrelated queries: {args.unrelated_queries}, wrongly called public_copy: {unrelated_flagged}, "
            f"held for review: {unrelated_review}"
        )
        print(
            f"index query (window hashes, 8-10 views, radius {settings.review_distance_bits}) "
            f"over {stats.references} refs: "
            f"p50 {statistics.median(query_ms):.2f} ms, p95 {np.percentile(query_ms, 95):.2f} ms"
        )
        print(
            f"feature query (ORB words, shortlist {settings.feature_shortlist}) over {stats.references} refs: "
            f"p50 {statistics.median(feature_ms):.2f} ms, p95 {np.percentile(feature_ms, 95):.2f} ms"
        )
        print(
            f"descriptor partners, true reference: p5 {np.percentile(true_partners, 5):.0f}, "
            f"median {statistics.median(true_partners):.0f}, min {min(true_partners)}; other shortlisted references: "
            f"max {max(other_partners, default=0)}, p99 {np.percentile(other_partners or [0], 99):.0f} "
            f"(threshold {settings.feature_min_matches})"
        )
        print(
            f"fingerprint + index + verify per query (whole match_image): p50 {statistics.median(match_ms):.1f} ms, "
            f"p95 {np.percentile(match_ms, 95):.1f} ms"
        )
        if true_inliers:
            print(
                f"RANSAC inliers, true reference: p5 {np.percentile(true_inliers, 5):.0f}, "
                f"median {statistics.median(true_inliers):.0f}; other references: "
                f"max {max(false_inliers, default=0)}, p99 {np.percentile(false_inliers or [0], 99):.0f} "
                f"(threshold {settings.verify_min_inliers})"
            )
        if false_reports:
            print("false public_copy reports (query -> reference, bits, method, verification):")
            for line in false_reports[:30]:
                print("  " + line)
        if review_reasons:
            print("unrelated queries held for review (query -> reference, bits, method, verification):")
            for line in review_reasons[:10]:
                print("  " + line)
        if misses:
            print("missed (transform:file:verdict:best distance):", ", ".join(misses[:40]))

        # Latency at scale: synthetic references, each with as many windows as a real one.
        windows = len(compute_fingerprints(np.asarray(next(iter(originals.values()))), settings).windows)
        count = args.latency_references
        started = time.perf_counter()
        big = DiskMatchIndex(
            Path(workdir) / "big", commit_every=settings.commit_every, reference_features=settings.reference_features
        )
        code_rng = np.random.default_rng(args.seed)
        descriptor_pool = np.concatenate([p for p in pool if len(p)])
        chunk = 100_000
        for first in range(0, count, chunk):
            n = min(chunk, count - first)
            codes = code_rng.integers(0, 2**63, (n, windows), dtype=np.int64).astype(np.uint64)
            codes ^= code_rng.integers(0, 2, (n, windows), dtype=np.int64).astype(np.uint64) << np.uint64(63)
            descriptors = _synthetic_descriptors(descriptor_pool, code_rng, n, settings.reference_features)
            big.add_codes([f"synthetic/{first + i:08d}" for i in range(n)], codes, descriptors=descriptors)
        for name, image in originals.items():
            big.add(name, compute_fingerprints(np.asarray(image), settings))
        big.commit()
        big_build = time.perf_counter() - started
        big = DiskMatchIndex(Path(workdir) / "big", readonly=True)
        big_stats = big.stats()
        rss_before = _rss_mb()
        latencies: list[float] = []
        hash_latencies: list[float] = []
        hits = feature_hits = 0
        for transform, name in queries:
            copy = np.asarray(TRANSFORMS[transform](originals[name], rng).convert("RGB"))
            prints = compute_fingerprints(copy, settings)
            t0 = time.perf_counter()
            found = big.query(prints, max_distance_bits=settings.review_distance_bits)
            t1 = time.perf_counter()
            similar = big.similar(
                prints, shortlist=settings.feature_shortlist, min_matches=settings.feature_min_matches
            )
            latencies.append((time.perf_counter() - t0) * 1000)
            hash_latencies.append((t1 - t0) * 1000)
            hits += any(m.reference == name for m in (*found, *similar))
            feature_hits += any(m.reference == name for m in similar)
        print(
            f"\nscale: {big_stats.references:,} references x {windows} windows = {big_stats.entries:,} entries, "
            f"built in {big_build:.1f} s, {big_stats.bytes / 1e6:.0f} MB on disk = "
            f"{big_stats.bytes_per_reference:.0f} bytes/reference, "
            f"{big_stats.segments} segments"
        )
        print(
            f"index query latency at scale (one core, {len(latencies)} queries, window hashes at radius "
            f"{settings.review_distance_bits} + ORB words): "
            f"p50 {statistics.median(latencies):.2f} ms, p95 {np.percentile(latencies, 95):.2f} ms "
            f"(hashes alone p50 {statistics.median(hash_latencies):.2f} ms, "
            f"p95 {np.percentile(hash_latencies, 95):.2f} ms); "
            f"true original among candidates: {hits / len(latencies):.3f} "
            f"(by features {feature_hits / len(latencies):.3f}); "
            f"peak RSS {max(rss_before, _rss_mb()):.0f} MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
