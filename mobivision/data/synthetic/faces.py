"""A synthetic face-attribute dataset written in CelebA's official on-disk format, for the demo and the tests.

Each image is a cartoon face whose simple visual properties *are* its attributes: a fringe over the forehead
(``Bangs``), yellow hair (``Blond_Hair``), glasses (``Eyeglasses``), an open mouth (``Mouth_Slightly_Open``), a
moustache (``Mustache``), very light skin (``Pale_Skin``), a mouth curved up (``Smiling``) and a hat
(``Wearing_Hat``). Each attribute is drawn independently with its own prior (``FACE_ATTRIBUTE_PRIORS``),
imbalanced like CelebA's, and everything else (background, position, size, skin and hair tone, clothes, hat and
frame colours) is random, so a small MobileNet has to look at the right parts to learn the labels. Every
attribute stays visible at 64 pixels.

``write_synthetic_faces`` writes exactly CelebA's files (Liu et al., 2015, "Deep Learning Face Attributes in the
Wild"), with the official attribute names in the official relative order, so a reader of the real dataset reads
it unchanged:

- ``img_align_celeba/000001.jpg``...: the aligned faces, ``size`` x ``size`` JPEGs;
- ``img_celeba/000001.jpg``...: the "in-the-wild" images, a noisy canvas of about ``wild_size`` pixels a side
  (random aspect) with the aligned face pasted at a random place and scale;
- ``list_bbox_celeba.txt``: the count, the header ``image_id x_1 y_1 width height``, then the pasted face's
  extent per image in the real file's right-aligned columns;
- ``list_attr_celeba.txt``: the count, the attribute names each followed by one space, then per image the file
  and its values (+1 present, -1 absent), each right-aligned in width 2 after one space;
- ``list_eval_partition.txt``: ``<file> 0|1|2`` (train/val/test), contiguous blocks of 80/10/10 percent like
  the real split.

Image ``i`` (file ``i + 1``) depends only on ``(seed, i)``; the ``.complete`` marker (``write_dataset``) is
written last, so an interrupted write is redone, and a complete one written with other options is refused rather
than reused.
"""

from __future__ import annotations

import colorsys
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mobivision.data.synthetic.common import (
    JPEG_QUALITY,
    desaturate,
    image_file_name,
    image_rng,
    partition_counts,
    rgb,
    textured_background,
    to_image,
    write_dataset,
)
from mobivision.errors import DataError

FACE_ATTRIBUTE_PRIORS: dict[str, float] = {
    "Bangs": 0.2,
    "Blond_Hair": 0.18,
    "Eyeglasses": 0.12,
    "Mouth_Slightly_Open": 0.45,
    "Mustache": 0.1,
    "Pale_Skin": 0.1,
    "Smiling": 0.5,
    "Wearing_Hat": 0.12,
}
"""Probability of each attribute, drawn independently per image (CelebA's order of the names)."""

FACE_ATTRIBUTES: tuple[str, ...] = tuple(FACE_ATTRIBUTE_PRIORS)
"""The official CelebA attribute names the drawing controls, in the order of ``list_attr_celeba.txt``."""

ALIGNED_DIR = "img_align_celeba"
WILD_DIR = "img_celeba"
ATTR_FILE = "list_attr_celeba.txt"
BBOX_FILE = "list_bbox_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"

_SUPERSAMPLE = 2  # faces are drawn at twice the size and downsampled, for smooth edges
_SKIN_LIGHT, _SKIN_DARK = np.array([226.0, 184.0, 152.0]), np.array([140.0, 95.0, 68.0])
_SKIN_PALE = np.array([248.0, 234.0, 226.0])
_DARK_HAIR = np.array([[35.0, 28.0, 24.0], [72.0, 46.0, 30.0], [112.0, 72.0, 42.0], [122.0, 58.0, 34.0]])
_BLOND_LIGHT, _BLOND_DARK = np.array([242.0, 210.0, 95.0]), np.array([215.0, 172.0, 60.0])
_LIPS, _MOUTH_INSIDE, _TEETH = np.array([158.0, 40.0, 56.0]), (70, 18, 26), (236, 234, 226)
_FRAMES = np.array([[25.0, 22.0, 20.0], [60.0, 38.0, 24.0], [24.0, 30.0, 70.0]])
_SUNGLASSES = (32, 30, 34)
_HAIR_CONTRAST = 60  # least difference, in some channel, between dark hair and the skin tone


def _rgb(color) -> tuple[int, int, int]:
    """A colour as an RGB tuple, each channel rounded (``rgb`` truncates)."""
    return rgb(np.round(color))


def _saturated(rng: np.random.Generator, saturation: tuple[float, float], value: tuple[float, float]):
    """A colour of random hue with saturation and value (0..1) drawn from the given ranges."""
    red, green, blue = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*saturation), rng.uniform(*value))
    return _rgb((255 * red, 255 * green, 255 * blue))


def draw_attributes(rng: np.random.Generator) -> dict[str, bool]:
    """Each attribute of ``FACE_ATTRIBUTES``, present with its prior probability, independently."""
    draws = rng.random(len(FACE_ATTRIBUTES))
    return {name: bool(u < FACE_ATTRIBUTE_PRIORS[name]) for name, u in zip(FACE_ATTRIBUTES, draws, strict=True)}


def _scene(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """``textured_background`` half desaturated, ``width x height``."""
    pixels = desaturate(textured_background(rng, max(width, height)), 0.5)
    return to_image(pixels[:height, :width])


def draw_face(rng: np.random.Generator, attributes: dict[str, bool], *, size: int = 64) -> Image.Image:
    """Draw one aligned synthetic face showing ``attributes`` (missing names count as absent).

    The scene is a desaturated gradient-and-noise background, clothed shoulders, hair (long at the sides and
    behind the head), a neck and an elliptical face (half-width about 0.25 and half-height 0.32 of the side,
    centred near the middle, jittered by a few percent in place and scale) with eyebrows, eyes, a nose and a
    mouth. The attributes then change:

    - ``Pale_Skin``: the skin is near white (248, 234, 226) instead of a tone between (226, 184, 152) and
      (140, 95, 68);
    - ``Blond_Hair``: the hair is yellow (between (242, 210, 95) and (215, 172, 60)) instead of black, dark
      brown, brown or auburn (darkened where it would be close to the skin tone);
    - ``Bangs``: a jagged fringe in the hair colour covers the forehead down to just above the eyebrows; without
      it the hairline is high on the forehead;
    - ``Eyeglasses``: dark rings round the eyes with a bridge and arms (a quarter of them sunglasses);
    - ``Smiling``: the mouth is a crescent curved up (and wider) instead of a straight line;
    - ``Mouth_Slightly_Open``: the mouth is a dark opening with a lip rim (a D shape with teeth when smiling);
    - ``Mustache``: a dark band between the nose and the mouth (half the darker of hair and skin);
    - ``Wearing_Hat``: a hat of random saturated colour with a brim over the top of the head.

    Every random draw comes before the drawing and does not depend on ``attributes``, so for one generator state
    two attribute sets give images that differ only where the attributes are drawn. Lengths are relative to the
    face, which is drawn at twice ``size`` and downsampled for smooth edges, then laid over the background.

    Args:
        rng: The generator (the writer seeds one per image).
        attributes: Attribute name to presence, names from ``FACE_ATTRIBUTES``.
        size: Image side in pixels.

    Returns:
        The RGB image.
    """
    has = {name: bool(attributes.get(name, False)) for name in FACE_ATTRIBUTES}
    scene = _scene(rng, size, size)
    big = size * _SUPERSAMPLE
    unit = big / 64  # line widths below are in pixels of a 64 px image
    scale = rng.uniform(0.92, 1.08)
    cx, cy = big * (0.5 + rng.uniform(-0.04, 0.04)), big * (0.56 + rng.uniform(-0.03, 0.03))
    a, b = (f * big * scale * rng.uniform(0.94, 1.06) for f in (0.25, 0.32))
    pale = _SKIN_PALE + rng.uniform(-5, 5, 3)
    tone = _SKIN_LIGHT + rng.uniform(0, 1) * (_SKIN_DARK - _SKIN_LIGHT) + rng.uniform(-8, 8, 3)
    blond = _BLOND_LIGHT + rng.uniform(0, 1) * (_BLOND_DARK - _BLOND_LIGHT) + rng.uniform(-6, 6, 3)
    dark = _DARK_HAIR[rng.integers(len(_DARK_HAIR))] + rng.uniform(-10, 10, 3)
    while np.abs(dark - tone).max() < _HAIR_CONTRAST:  # brown hair on brown skin: darker, to stay visible
        dark = dark * 0.85
    clothes = _saturated(rng, (0.2, 0.6), (0.3, 0.8))
    hair_bottom = cy + rng.uniform(0.1, 0.75) * b
    hairline = rng.uniform(0.7, 0.8)
    fringe_tips = rng.uniform(0.07, 0.12, size=5)
    lips = _rgb(_LIPS + rng.uniform(-12, 12, 3))
    mouth_width = rng.uniform(0.9, 1.1)
    frame = _rgb(_FRAMES[rng.integers(len(_FRAMES))] + rng.uniform(-8, 8, 3))
    sunglasses = rng.random() < 0.25
    hat = np.asarray(_saturated(rng, (0.55, 0.9), (0.4, 0.85)), dtype=np.float64)
    brim_y, crown_height = cy - rng.uniform(0.74, 0.82) * b, rng.uniform(0.6, 0.8) * b

    skin = pale if has["Pale_Skin"] else tone
    hair = blond if has["Blond_Hair"] else dark
    skin_rgb, hair_rgb, shade_rgb = _rgb(skin), _rgb(hair), _rgb(skin * 0.78)
    layer = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)

    # Shoulders, hair behind the head, neck, face.
    draw.ellipse((cx - 2.1 * a, cy + 1.15 * b, cx + 2.1 * a, cy + 3.2 * b), fill=clothes)
    draw.ellipse((cx - 1.3 * a, cy - 1.12 * b, cx + 1.3 * a, cy + 0.9 * b), fill=hair_rgb)
    draw.rectangle((cx - 1.3 * a, cy - 0.1 * b, cx + 1.3 * a, hair_bottom), fill=hair_rgb)
    draw.rectangle((cx - 0.42 * a, cy + 0.5 * b, cx + 0.42 * a, cy + 1.3 * b), fill=shade_rgb)
    draw.ellipse((cx - a, cy - b, cx + a, cy + b), fill=skin_rgb)

    # Hair over the top of the face: a cap down to the hairline, or a jagged fringe down to the eyebrows.
    eye_y = cy - 0.06 * b
    line = cy - (0.38 if has["Bangs"] else hairline) * b
    cap = math.degrees(math.acos((cy - line) / (1.04 * b)))
    draw.chord((cx - 1.04 * a, cy - 1.04 * b, cx + 1.04 * a, cy + 1.04 * b), 270 - cap, 270 + cap, fill=hair_rgb)
    if has["Bangs"]:
        half = 1.04 * a * math.sin(math.radians(cap))
        for k, tip in enumerate(fringe_tips):
            x0 = cx - half + 2 * half * k / len(fringe_tips)
            x1 = x0 + 2 * half / len(fringe_tips)
            draw.polygon([(x0, line - 1), (x1, line - 1), ((x0 + x1) / 2, line + tip * b)], fill=hair_rgb)
            if k:  # a darker strand between two locks
                draw.line((x0, line - 0.22 * b, x0, line + 0.02 * b), fill=_rgb(hair * 0.7), width=max(1, round(unit)))

    # Eyebrows, eyes, nose.
    brow_rgb = _rgb(hair * (0.55 if has["Blond_Hair"] else 0.8))
    for side in (-1, 1):
        ex, brow_y = cx + side * 0.42 * a, eye_y - 0.2 * b
        brow = (ex - 0.2 * a, brow_y - 0.02 * b * side, ex + 0.2 * a, brow_y + 0.02 * b * side)
        draw.line(brow, fill=brow_rgb, width=max(1, round(1.2 * unit)))
        draw.ellipse((ex - 0.17 * a, eye_y - 0.085 * b, ex + 0.17 * a, eye_y + 0.085 * b), fill=(238, 238, 232))
        r = 0.085 * a
        draw.ellipse((ex - r, eye_y - r, ex + r, eye_y + r), fill=(30, 24, 22))
    nose = (cx, cy + 0.04 * b, cx + 0.07 * a, cy + 0.2 * b, cx - 0.03 * a, cy + 0.22 * b)
    draw.line(nose, fill=shade_rgb, width=max(1, round(unit)))

    # The mouth, then the mustache over its top.
    mouth_y = cy + 0.6 * b
    w = 0.42 * a * mouth_width * (1.1 if has["Smiling"] else 1.0)
    lip = max(1, round(2 * unit))
    if has["Mouth_Slightly_Open"] and has["Smiling"]:
        box = (cx - w, mouth_y - 0.28 * b, cx + w, mouth_y + 0.24 * b)
        draw.pieslice(box, 0, 180, fill=_MOUTH_INSIDE, outline=lips, width=lip)
        top = (box[1] + box[3]) / 2
        draw.rectangle((cx - 0.7 * w, top + lip, cx + 0.7 * w, top + lip + 0.06 * b), fill=_TEETH)
    elif has["Mouth_Slightly_Open"]:
        box = (cx - 0.62 * w, mouth_y - 0.19 * b, cx + 0.62 * w, mouth_y + 0.19 * b)
        draw.ellipse(box, fill=_MOUTH_INSIDE, outline=lips, width=lip)
    elif has["Smiling"]:
        # A crescent: the lower half of an ellipse, its top carved out by a flatter one in the skin colour.
        draw.pieslice((cx - w, mouth_y - 0.3 * b, cx + w, mouth_y + 0.2 * b), 0, 180, fill=lips)
        draw.ellipse((cx - 1.05 * w, mouth_y - 0.3 * b, cx + 1.05 * w, mouth_y + 0.04 * b), fill=skin_rgb)
    else:
        draw.line((cx - w, mouth_y, cx + w, mouth_y), fill=lips, width=lip + 1)
    if has["Mustache"]:
        my = cy + 0.36 * b
        band = [(-0.55, 0.14), (-0.16, -0.07), (0, -0.04), (0.16, -0.07), (0.55, 0.14), (0.36, 0.17), (0, 0.1)]
        band.append((-0.36, 0.17))
        draw.polygon([(cx + u * a, my + v * b) for u, v in band], fill=_rgb(np.minimum(hair, skin) * 0.5))

    if has["Eyeglasses"]:
        r, ring = 0.3 * a, max(1, round(1.5 * unit))
        for side in (-1, 1):
            ex = cx + side * 0.42 * a
            lens = (ex - r, eye_y - 0.85 * r, ex + r, eye_y + 0.85 * r)
            draw.ellipse(lens, fill=_SUNGLASSES if sunglasses else None, outline=frame, width=ring)
            draw.line((ex + side * r, eye_y - 0.2 * r, cx + side * a, eye_y - 0.3 * r), fill=frame, width=ring)
        draw.line((cx - 0.42 * a + r, eye_y - 0.2 * r, cx + 0.42 * a - r, eye_y - 0.2 * r), fill=frame, width=ring)

    if has["Wearing_Hat"]:
        crown = (cx - 1.02 * a, brim_y - crown_height, cx + 1.02 * a, brim_y + 0.05 * b)
        draw.rounded_rectangle(crown, radius=0.5 * a, fill=_rgb(hat))
        draw.rectangle((crown[0], brim_y - 0.2 * b, crown[2], brim_y - 0.1 * b), fill=_rgb(hat * 0.6))
        brim = (cx - 1.5 * a, brim_y - 0.06 * b, cx + 1.5 * a, brim_y + 0.08 * b)
        draw.rounded_rectangle(brim, radius=0.07 * b, fill=_rgb(hat * 0.85))

    small = layer.convert("RGBa").resize((size, size), Image.Resampling.BOX).convert("RGBA")
    return Image.alpha_composite(scene.convert("RGBA"), small).convert("RGB")


def draw_wild(
    rng: np.random.Generator, face: Image.Image, *, wild_size: int = 96
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Paste ``face`` into an "in-the-wild" image and return it with the pasted extent ``(x, y, w, h)``.

    The canvas is ``_scene``'s noisy, textured background with each side uniform in 0.8..1.25 of ``wild_size``;
    the face is resized to a square of 0.45..0.8 of the shorter side and pasted at a uniform position inside.
    """
    width, height = (max(8, round(wild_size * f)) for f in rng.uniform(0.8, 1.25, size=2))
    canvas = _scene(rng, width, height)
    side = max(4, round(rng.uniform(0.45, 0.8) * min(width, height)))
    x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
    canvas.paste(face.resize((side, side), Image.Resampling.BILINEAR), (x, y))
    return canvas, (x, y, side, side)


def write_synthetic_faces(
    root: str | Path, *, num_images: int = 2000, size: int = 64, wild_size: int = 96, seed: int = 0
) -> Path:
    """Write a synthetic CelebA (aligned and in-the-wild images, attribute, box and partition lists) once.

    Image ``i`` is named ``f"{i + 1:06d}.jpg"``; its attributes come from ``draw_attributes`` and its pictures
    from ``draw_face`` and ``draw_wild``, all with ``image_rng(seed, i)``, so the same seed gives
    identical files. See the module docstring for the layout. Later calls with the same options reuse the
    complete dataset.

    Args:
        root: Output folder (CelebA's root: the one holding ``list_attr_celeba.txt``).
        num_images: Number of images (>= 3: at least one per split).
        size: Side of the aligned images in pixels (>= 32, so every attribute stays visible).
        wild_size: Nominal side of the in-the-wild images (>= 16); each side is 0.8..1.25 of it.
        seed: Seed of every image's generator.

    Returns:
        ``root``.

    Raises:
        DataError: An option is out of range, or ``root`` holds a complete dataset written with other options.
    """
    if num_images < 3 or size < 32 or wild_size < 16:
        raise DataError(
            f"need num_images >= 3 (one per split), size >= 32 and wild_size >= 16, got num_images={num_images} "
            f"size={size} wild_size={wild_size}"
        )
    options = f"celeba_faces seed={seed} num_images={num_images} size={size} wild_size={wild_size}\n"

    def write(folder: Path) -> None:
        (folder / ALIGNED_DIR).mkdir(parents=True, exist_ok=True)
        (folder / WILD_DIR).mkdir(parents=True, exist_ok=True)
        attr_lines = [f"{num_images}", "".join(f"{name} " for name in FACE_ATTRIBUTES)]
        bbox_lines = [f"{num_images}", "image_id x_1 y_1 width height"]
        for i in range(num_images):
            name = image_file_name(i)
            rng = image_rng(seed, i)
            attributes = draw_attributes(rng)
            face = draw_face(rng, attributes, size=size)
            wild, (x, y, w, h) = draw_wild(rng, face, wild_size=wild_size)
            face.save(folder / ALIGNED_DIR / name, quality=JPEG_QUALITY)
            wild.save(folder / WILD_DIR / name, quality=JPEG_QUALITY)
            attr_lines.append(name + "".join(f" {1 if attributes[a] else -1:2d}" for a in FACE_ATTRIBUTES))
            bbox_lines.append(f"{name} {x:5d} {y:3d} {w:3d} {h:3d}")
        partition = [str(k) for k, count in enumerate(partition_counts(num_images).values()) for _ in range(count)]
        partition_lines = [f"{image_file_name(i)} {value}" for i, value in enumerate(partition)]
        for file, lines in ((ATTR_FILE, attr_lines), (BBOX_FILE, bbox_lines), (PARTITION_FILE, partition_lines)):
            (folder / file).write_text("\n".join(lines) + "\n")

    return write_dataset(root, options, write)
