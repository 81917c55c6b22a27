"""``mobivision.visualize.draw_text_lines``: attribute lines written on an enlarged copy of the image."""

from __future__ import annotations

import numpy as np

from mobivision.visualize import draw_detections, draw_text_lines


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
