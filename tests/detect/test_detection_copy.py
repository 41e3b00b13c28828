"""The detection copy: the size detectors see, and how close the two-step shrink stays to one resize."""

from __future__ import annotations

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import data

from deid.detect import make_detection_copy


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 5000),
    width=st.integers(1, 5000),
    side=st.integers(32, 2000),
)
def test_copy_is_at_most_the_side_and_the_scale_maps_back(height: int, width: int, side: int) -> None:
    image = np.zeros((height, width, 3), np.uint8)
    copy, scale = make_detection_copy(image, max_side_px=side)
    assert max(copy.shape[:2]) <= side
    if max(height, width) <= side:
        assert copy is image and scale == 1.0
    else:
        assert max(copy.shape[:2]) == side
        assert abs(max(copy.shape[:2]) * scale - max(height, width)) < 1e-6 * max(height, width) + 1e-9
        # the aspect is kept to within a pixel
        assert abs(copy.shape[0] * scale - height) <= scale + 1 and abs(copy.shape[1] * scale - width) <= scale + 1


def test_two_step_shrink_matches_one_resize_on_a_real_photo() -> None:
    photo = cv2.resize(data.astronaut(), (4000, 3000), interpolation=cv2.INTER_CUBIC)
    copy, _ = make_detection_copy(photo, max_side_px=1280)
    direct = cv2.resize(photo, (1280, 960), interpolation=cv2.INTER_AREA).astype(int)
    difference = np.abs(direct - copy)
    assert difference.mean() < 1.0 and np.percentile(difference, 99) <= 4
