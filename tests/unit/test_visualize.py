"""``mobivision.visualize``: attribute lines written on an enlarged copy of the image, detections drawn as
torchvision draws them, and every drawing bounded by the picture it returns."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mobivision.errors import DataError
from mobivision.inference.results import Attributes, Result
from mobivision.visualize import draw_detections, draw_text_lines, drawing_problem


def test_text_is_written_on_a_band_of_an_enlarged_copy() -> None:
    image = np.full((64, 80, 3), 200, np.uint8)
    picture = draw_text_lines(image, ["Smiling 0.97", "Eyeglasses 0.91"], min_size=256)
    assert picture.shape == (256, 320, 3) and picture.dtype == np.uint8
    assert image.min() == image.max() == 200  # the input is not drawn on
    yellow = (picture[..., 0] > 200) & (picture[..., 1] > 200) & (picture[..., 2] < 100)
    rows = np.nonzero(yellow)[0]
    assert len(rows) > 50  # the text
    assert rows.max() < 256 // 2  # two lines at the top-left
    assert (picture[rows.max() + 12 :] == 200).all()  # below the band the image is unchanged
    assert picture[2, 2].max() < 200  # the band darkens the image under the text


def test_large_images_keep_their_size_and_no_lines_change_nothing() -> None:
    image = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    assert np.array_equal(draw_text_lines(image, [], min_size=256), image)


def test_detections_are_drawn_as_torchvision_draws_them() -> None:
    import torch
    from torchvision.utils import draw_bounding_boxes

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    results = [
        {"bbox": [float(x), float(y), float(w), float(h)], "score": float(s), "category_name": name}
        for x, y, w, h, s, name in zip(
            rng.uniform(-5, 300, 12), rng.uniform(-5, 220, 12), rng.uniform(0.4, 90, 12), rng.uniform(0.4, 90, 12),
            rng.uniform(0, 1, 12), ["cat", "dog", "a much longer name"] * 4, strict=True,
        )
    ] + [{"bbox": [10.7, 20.2, 30.9, 40.5], "score": 0.5, "label": 1}]  # fmt: skip
    boxes = torch.tensor([r["bbox"] for r in results], dtype=torch.float32)
    boxes[:, 2:] += boxes[:, :2]
    labels = [f"{r.get('category_name') or ['x', 'y'][r['label']]} {r['score']:.2f}" for r in results]
    expected = draw_bounding_boxes(torch.from_numpy(image).permute(2, 0, 1), boxes, labels=labels, colors="yellow")
    drawn = draw_detections(image, results, ["x", "y"])
    assert np.array_equal(drawn, expected.permute(1, 2, 0).numpy())
    assert not np.array_equal(drawn, image) and np.array_equal(draw_detections(image, [], []), image)


def test_text_is_sized_from_the_picture_and_small_images_are_enlarged_at_most_to_2048() -> None:
    for shape, expected in (
        ((64, 80), (256, 320)),
        ((8, 256), (64, 2048)),
        ((256, 8), (2048, 64)),
        ((1, 1000), (2, 2048)),
    ):
        picture = draw_text_lines(np.full((*shape, 3), 90, np.uint8), ["Smiling 0.97"], min_size=256)
        assert picture.shape == (*expected, 3), shape
    tall = np.full((3000, 100, 3), 90, np.uint8)  # the text is sized from its 100-pixel width, not its height
    picture = draw_text_lines(tall, ["ab"])
    yellow = (picture[..., 0] > 200) & (picture[..., 1] > 200) & (picture[..., 2] < 100)
    rows = np.nonzero(yellow.any(axis=1))[0]
    assert picture.shape == tall.shape and 5 <= rows.max() - rows.min() < 20


def test_drawing_a_thin_strip_takes_no_more_memory_than_its_picture() -> None:
    # A 1 x 1000 image used to be enlarged to 256 x 256,000 pixels (1.1 GB peak); now 2 x 2048. The peak is
    # measured in a fresh process (Pillow allocates outside Python's tracemalloc).
    script = (
        "import resource, numpy as np\n"
        "from mobivision.visualize import draw_text_lines\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "picture = draw_text_lines(np.zeros((1, 1000, 3), np.uint8), ['Smiling 0.97', 'Eyeglasses 0.91'])\n"
        "print(picture.shape, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    shape, grown_kb = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.rsplit(" ", 1)
    assert shape == "(2, 2048, 3)"
    assert int(grown_kb) < 20_000  # kB: fonts and numpy's first calls, not a picture of 256,000 columns


@pytest.mark.parametrize("size", [(1, 1), (1, 32), (32, 1), (1, 33), (600, 2), (2, 600), (10000, 1), (70000, 2)])
def test_every_image_gets_a_picture_or_a_result_without_one(size: tuple[int, int]) -> None:
    width, height = size
    image = np.full((height, width, 3), 128, np.uint8)
    result = Result("strip.png", {"attributes": Attributes({"hat": 0.9}, ["hat"])}, image)
    problem = drawing_problem(width, height)
    assert (problem is None) == (max(size) <= 32 * min(size))
    if problem is None:
        buffer = io.BytesIO()
        result.plot().save(buffer, format="JPEG")  # a JPEG side holds at most 65,500 pixels
        assert Image.open(buffer).size[0] >= width
    else:
        assert result.drawing_problem == problem == f"{width} x {height} pixels is too elongated to draw (over 32:1)"
        assert result.picture() is None
        with pytest.raises(DataError, match=rf"strip\.png: {width} x {height} pixels is too elongated to draw"):
            result.plot()
