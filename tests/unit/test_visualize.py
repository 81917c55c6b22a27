"""``mobivision.visualize.draw_text_lines``: attribute lines written on an enlarged copy of the image."""

from __future__ import annotations

import numpy as np

from mobivision.visualize import draw_text_lines


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
