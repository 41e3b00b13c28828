"""Regenerate the sample batch in this folder: ``python sample_data/make_sample_data.py``.

Everything is generated from a fixed seed, from photos that ship inside
scikit-image (``astronaut``, ``coffee``, ``text``, ``page``) and from
procedural skin; see README.md beside this file for what each file is for.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import piexif
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin
from scipy import ndimage
from skimage import data

from deid.cases import INPUT_COLUMNS

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
rng = np.random.default_rng(20261125)

SKIN_TONES = {  # rough sRGB base colours, light to dark
    1: (236, 206, 186),
    2: (224, 186, 160),
    3: (198, 152, 118),
    4: (170, 120, 86),
    5: (122, 80, 56),
    6: (80, 52, 38),
}


def skin(width: int, height: int, tone: int) -> np.ndarray:
    """Procedural skin: base tone, soft shading, pores and fine hair-like noise."""
    base = np.array(SKIN_TONES[tone], dtype=np.float64)
    shade = ndimage.gaussian_filter(rng.normal(0, 1, (height, width)), sigma=min(width, height) / 8)
    shade = shade / (np.abs(shade).max() + 1e-9) * 0.12
    pores = ndimage.gaussian_filter(rng.normal(0, 1, (height, width)), sigma=1.2) * 0.04
    factor = 1.0 + shade + pores
    image = base[None, None, :] * factor[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def add_rash(image: np.ndarray, centre: tuple[int, int], radius: int, *, strength: float = 0.55) -> np.ndarray:
    """Irregular red, slightly raised-looking patches around ``centre``."""
    height, width = image.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width]
    blob = np.zeros((height, width))
    for _ in range(14):
        cy = centre[1] + rng.normal(0, radius * 0.45)
        cx = centre[0] + rng.normal(0, radius * 0.45)
        r = radius * rng.uniform(0.15, 0.4)
        blob += np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)))
    blob = np.clip(blob, 0, 1) * strength
    blob *= 0.8 + 0.4 * ndimage.gaussian_filter(rng.uniform(0, 1, (height, width)), 3)
    red = np.array([200.0, 40.0, 50.0])
    out = image.astype(np.float64) * (1 - blob[..., None]) + red * blob[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def add_mole(image: np.ndarray, centre: tuple[int, int], radius: int) -> np.ndarray:
    """A dark brown, slightly irregular naevus."""
    height, width = image.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width]
    angle = np.arctan2(yy - centre[1], xx - centre[0])
    edge = radius * (1 + 0.12 * np.sin(3 * angle) + 0.06 * np.cos(5 * angle))
    inside = np.hypot(yy - centre[1], xx - centre[0]) < edge
    mask = ndimage.gaussian_filter(inside.astype(np.float64), 1.5)
    brown = np.array([70.0, 42.0, 30.0])
    out = image.astype(np.float64) * (1 - mask[..., None]) + brown * mask[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def paste(background: np.ndarray, patch: np.ndarray, left: int, top: int) -> np.ndarray:
    out = background.copy()
    out[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return out


def draw_text(
    image: np.ndarray, text: str, xy: tuple[int, int], size: int, *, fill=(20, 20, 20), box=None
) -> np.ndarray:
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    font = ImageFont.load_default(size=size)
    if box is not None:
        bbox = draw.textbbox(xy, text, font=font)
        draw.rectangle((bbox[0] - 12, bbox[1] - 10, bbox[2] + 12, bbox[3] + 10), fill=box)
    draw.text(xy, text, font=font, fill=fill)
    return np.asarray(pil)


def draw_tattoo(image: np.ndarray, centre: tuple[int, int], scale: int) -> np.ndarray:
    """Blue-black line-art: a star inside a circle, with a word under it."""
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    cx, cy = centre
    ink = (38, 44, 70)
    draw.ellipse((cx - scale, cy - scale, cx + scale, cy + scale), outline=ink, width=max(3, scale // 14))
    points = []
    for k in range(10):
        r = scale * (0.85 if k % 2 == 0 else 0.38)
        a = -np.pi / 2 + k * np.pi / 5
        points.append((cx + r * np.cos(a), cy + r * np.sin(a)))
    draw.polygon(points, outline=ink, width=max(3, scale // 16))
    draw.text((cx - scale, cy + scale + 10), "MAMA", font=ImageFont.load_default(size=scale // 2), fill=ink)
    softened = ndimage.gaussian_filter(np.asarray(pil).astype(np.float64), sigma=(1.0, 1.0, 0))
    return np.clip(softened, 0, 255).astype(np.uint8)


def face_patch(size: int) -> np.ndarray:
    """The astronaut's head and shoulders, resized to ``size`` pixels wide."""
    head = data.astronaut()[0:260, 110:340]
    height = round(size * head.shape[0] / head.shape[1])
    return np.asarray(Image.fromarray(head).resize((size, height), Image.LANCZOS))


def gps_exif(orientation: int = 1) -> bytes:
    zeroth = {
        piexif.ImageIFD.Make: b"Pixelphone",
        piexif.ImageIFD.Model: b"PX-7 Pro",
        piexif.ImageIFD.Software: b"PhotoApp 4.2",
        piexif.ImageIFD.Artist: b"Jane Q. Contributor",
        piexif.ImageIFD.DateTime: b"2025:06:14 09:31:07",
        piexif.ImageIFD.Orientation: orientation,
    }
    exif = {
        piexif.ExifIFD.DateTimeOriginal: b"2025:06:14 09:31:07",
        piexif.ExifIFD.BodySerialNumber: b"SN-4417-0093",
        piexif.ExifIFD.CameraOwnerName: b"Jane Q. Contributor",
        piexif.ExifIFD.LensSerialNumber: b"LN-77810",
    }
    gps = {
        piexif.GPSIFD.GPSLatitudeRef: b"N",
        piexif.GPSIFD.GPSLatitude: ((51, 1), (30, 1), (2614, 100)),
        piexif.GPSIFD.GPSLongitudeRef: b"W",
        piexif.GPSIFD.GPSLongitude: ((0, 1), (7, 1), (3960, 100)),
        piexif.GPSIFD.GPSDateStamp: b"2025:06:14",
    }
    return piexif.dump({"0th": zeroth, "Exif": exif, "GPS": gps, "1st": {}, "thumbnail": None})


def save_jpeg(name: str, pixels: np.ndarray, *, exif: bytes | None = None, quality: int = 86) -> None:
    kwargs = {"quality": quality}
    if exif is not None:
        kwargs["exif"] = exif
    Image.fromarray(pixels).save(IMAGES / name, "JPEG", **kwargs)


def write_public_atlas() -> None:
    """A stand-in for the curators' index of public images: scikit-image's published photos.

    ``coffee`` is the photo contribution c19 sent in (as a smaller, re-encoded copy, the way it
    would sit in an atlas or a web crawl); the others are unrelated public photos.
    """
    public = HERE / "public"
    public.mkdir(exist_ok=True)
    for old in public.iterdir():
        old.unlink()
    for name, loader in (
        ("coffee", data.coffee),
        ("chelsea", data.chelsea),
        ("rocket", data.rocket),
        ("hubble", data.hubble_deep_field),
    ):
        image = Image.fromarray(loader()).convert("RGB")
        image.thumbnail((480, 480))
        image.save(public / f"{name}.jpg", "JPEG", quality=80)


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    for old in IMAGES.iterdir():
        old.unlink()
    width, height = 960, 720

    # 1. Close-up rash, GPS-tagged EXIF from a "phone" (released, no EXIF must survive).
    save_jpeg("c01_rash_gps.jpg", add_rash(skin(width, height, 2), (480, 360), 220), exif=gps_exif())
    save_jpeg("c01_rash_angle.jpg", add_rash(skin(width, height, 2), (420, 380), 180))
    # 2. Astronaut portrait (a face: redacted).
    save_jpeg("c02_astronaut.jpg", data.astronaut())
    # 3. Forearm rash with a face in the corner (crop candidate).
    arm = add_rash(skin(width, height, 3), (600, 430), 200)
    save_jpeg("c03_face_corner.jpg", paste(arm, face_patch(200), 8, 8))
    # 4. Mole close-up stored sideways with EXIF orientation 6 (must come out upright).
    mole = add_mole(skin(height, width, 4), (360, 300), 45)  # portrait 720 wide x 960 high when upright
    sideways = np.ascontiguousarray(np.rot90(mole, k=1))  # stored rotated 90 degrees counter-clockwise
    save_jpeg("c04_mole_rotated.jpg", sideways, exif=piexif.dump({"0th": {piexif.ImageIFD.Orientation: 6}}))
    # 5. Rash next to a hospital wristband with a name (text: redacted).
    wrist = add_rash(skin(width, height, 5), (330, 360), 170)
    wrist = draw_text(wrist, "DOE, JOHN  MRN 00482913  DOB 1961-03-02", (470, 330), 20, box=(245, 245, 245))
    save_jpeg("c05_wristband.jpg", wrist)
    # 6. Corrupt upload: a truncated JPEG (held with a named error).
    buffer = io.BytesIO()
    Image.fromarray(add_rash(skin(width, height, 3), (480, 360), 200)).save(buffer, "JPEG", quality=86)
    (IMAGES / "c06_truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    save_jpeg("c06_rash_ok.jpg", add_rash(skin(width, height, 3), (500, 330), 160))
    # 7. Duplicate: contributor 7 uploads c01's photo again, byte for byte.
    (IMAGES / "c07_same_as_c01.jpg").write_bytes((IMAGES / "c01_rash_gps.jpg").read_bytes())
    save_jpeg("c07_rash_far.jpg", add_rash(skin(width, height, 2), (480, 360), 120))
    # 8. Tattoo near the lesion (held for review by default).
    ink = draw_tattoo(add_mole(skin(width, height, 2), (260, 520), 30), (640, 330), 120)
    save_jpeg("c08_tattoo.jpg", ink)
    # 9. Rare demographic combination (k-anonymity must generalise or suppress it).
    save_jpeg("c09_rash_rare.jpg", add_rash(skin(width, height, 6), (480, 360), 200))
    # 10. Document photographed beside the lesion (scikit-image's text and page photos).
    page = np.stack([data.page()] * 3, axis=-1)
    doc = paste(add_rash(skin(width, height, 3), (700, 360), 160), page[:, :480], 20, 150)
    save_jpeg("c10_document.jpg", doc)
    save_jpeg("c10_sign.jpg", np.stack([data.text()] * 3, axis=-1))
    # 11. Neck close-up (self-reported body part "neck": held by default).
    save_jpeg("c11_neck.jpg", add_rash(skin(width, height, 1), (480, 300), 210))
    # 12. Under-18 contributor (held: SCIN took adults only).
    save_jpeg("c12_minor.jpg", add_rash(skin(width, height, 2), (480, 360), 150))
    # 13. PNG with text chunks naming a person and a place.
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Q. Contributor")
    info.add_text("Location", "12 Baker Street, London")
    info.add_itxt("Comment", "rash photographed at home", lang="en")
    Image.fromarray(add_rash(skin(800, 600, 4), (400, 300), 180)).save(IMAGES / "c13_rash.png", pnginfo=info)
    # 14-18. Ordinary contributions, two or three images each, to give the demographics some crowd.
    for number in range(14, 19):
        tone = int(rng.integers(1, 6))
        for view in range(1, 3):
            centre = (int(rng.integers(300, 660)), int(rng.integers(250, 470)))
            patch = skin(width, height, tone)  # draws from rng before the radius: keep this order
            save_jpeg(f"c{number}_view{view}.jpg", add_rash(patch, centre, int(rng.integers(120, 220))))
    # 19. Coffee cup photo: no skin, no face (released unchanged but re-encoded).
    save_jpeg("c19_coffee.jpg", data.coffee())

    rows = [
        (
            "c01",
            "2025-06-14T09:40:00Z",
            "34",
            "female",
            "FST2",
            "white",
            "arm",
            "itching",
            "raised_or_bumpy",
            "ONE_TO_FOUR_WEEKS",
            "RASH",
            "Started after gardening; call me 07700 900123",
            [("c01_rash_gps.jpg", "CLOSE_UP"), ("c01_rash_angle.jpg", "AT_AN_ANGLE")],
        ),
        (
            "c02",
            "2025-06-15T11:02:00Z",
            "41",
            "male",
            "FST2",
            "white",
            "chest",
            "",
            "",
            "MORE_THAN_ONE_YEAR",
            "OTHER",
            "",
            [("c02_astronaut.jpg", "AT_DISTANCE")],
        ),
        (
            "c03",
            "2025-06-16T08:15:00Z",
            "29",
            "female",
            "FST3",
            "hispanic_latino_or_spanish_origin",
            "arm",
            "burning",
            "flat",
            "ONE_TO_SEVEN_DAYS",
            "RASH",
            "",
            [("c03_face_corner.jpg", "AT_DISTANCE")],
        ),
        (
            "c04",
            "2025-06-16T19:22:00Z",
            "52",
            "male",
            "FST4",
            "asian",
            "back",
            "",
            "raised_or_bumpy",
            "MORE_THAN_ONE_YEAR",
            "PIGMENTARY",
            "",
            [("c04_mole_rotated.jpg", "CLOSE_UP")],
        ),
        (
            "c05",
            "2025-06-17T10:05:00Z",
            "63",
            "male",
            "FST5",
            "black_or_african_american",
            "arm;hand",
            "itching",
            "flat",
            "ONE_TO_FOUR_WEEKS",
            "RASH",
            "",
            [("c05_wristband.jpg", "AT_AN_ANGLE")],
        ),
        (
            "c06",
            "2025-06-18T13:30:00Z",
            "38",
            "female",
            "FST3",
            "white",
            "leg",
            "",
            "flat",
            "ONE_TO_FOUR_WEEKS",
            "RASH",
            "",
            [("c06_truncated.jpg", "CLOSE_UP"), ("c06_rash_ok.jpg", "AT_AN_ANGLE")],
        ),
        (
            "c07",
            "2025-06-18T15:45:00Z",
            "34",
            "female",
            "FST2",
            "white",
            "arm",
            "itching",
            "raised_or_bumpy",
            "ONE_TO_FOUR_WEEKS",
            "RASH",
            "",
            [("c07_same_as_c01.jpg", "CLOSE_UP"), ("c07_rash_far.jpg", "AT_DISTANCE")],
        ),
        (
            "c08",
            "2025-06-19T09:00:00Z",
            "27",
            "female",
            "FST2",
            "white",
            "arm",
            "",
            "flat",
            "THREE_TO_TWELVE_MONTHS",
            "PIGMENTARY",
            "",
            [("c08_tattoo.jpg", "AT_AN_ANGLE")],
        ),
        (
            "c09",
            "2025-06-20T17:12:00Z",
            "67",
            "intersex",
            "FST6",
            "native_hawaiian_or_pacific_islander;asian",
            "leg",
            "pain",
            "raised_or_bumpy",
            "ONE_TO_FOUR_WEEKS",
            "RASH",
            "",
            [("c09_rash_rare.jpg", "CLOSE_UP")],
        ),
        (
            "c10",
            "2025-06-21T12:00:00Z",
            "45",
            "female",
            "FST3",
            "white",
            "arm",
            "",
            "flat",
            "ONE_TO_FOUR_WEEKS",
            "RASH",
            "See letter from Dr. Smith, 14 Elm Road",
            [("c10_document.jpg", "AT_DISTANCE"), ("c10_sign.jpg", "AT_DISTANCE")],
        ),
        (
            "c11",
            "2025-06-22T08:45:00Z",
            "31",
            "male",
            "FST1",
            "white",
            "neck",
            "itching",
            "raised_or_bumpy",
            "ONE_TO_SEVEN_DAYS",
            "RASH",
            "",
            [("c11_neck.jpg", "CLOSE_UP")],
        ),
        (
            "c12",
            "2025-06-22T18:20:00Z",
            "16",
            "female",
            "FST2",
            "white",
            "arm",
            "",
            "flat",
            "ONE_TO_FOUR_WEEKS",
            "RASH",
            "",
            [("c12_minor.jpg", "CLOSE_UP")],
        ),
        (
            "c13",
            "2025-06-23T10:10:00Z",
            "58",
            "female",
            "FST4",
            "asian",
            "leg",
            "",
            "flat",
            "MORE_THAN_ONE_YEAR",
            "RASH",
            "",
            [("c13_rash.png", "CLOSE_UP")],
        ),
    ]
    for number in range(14, 19):
        rows.append(
            (
                f"c{number}",
                f"2025-06-{10 + number}T09:00:00Z",
                str(int(rng.integers(20, 75))),
                ["female", "male"][number % 2],
                f"FST{1 + number % 5}",
                "white",
                "arm",
                "itching",
                "flat",
                "ONE_TO_FOUR_WEEKS",
                "RASH",
                "",
                [(f"c{number}_view1.jpg", "CLOSE_UP"), (f"c{number}_view2.jpg", "AT_AN_ANGLE")],
            )
        )
    rows.append(
        ("c19", "2025-06-30T09:00:00Z", "", "", "", "", "", "", "", "", "", "", [("c19_coffee.jpg", "AT_DISTANCE")])
    )

    header = list(INPUT_COLUMNS)
    with open(HERE / "cases.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for *fields, images in rows:
            cells = list(fields)
            for index in range(3):
                cells += list(images[index]) if index < len(images) else ["", ""]
            writer.writerow(cells)
    write_public_atlas()
    total = sum(p.stat().st_size for p in IMAGES.iterdir())
    print(f"wrote {len(rows)} contributions, {len(list(IMAGES.iterdir()))} images, {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
