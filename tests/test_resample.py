"""viper.resample: OpenCV's bilinear warp reproduced bit for bit (the face models read its exact pixels)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from viper.resample import grey, resize, warp

RNG = np.random.default_rng(7)
IMAGE = RNG.integers(0, 256, (90, 120, 3), dtype=np.uint8)


def affine(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    return np.array([[cos, -sin, tx], [sin, cos, ty]])


def test_identity_and_integer_shifts_copy_pixels():
    np.testing.assert_array_equal(warp(IMAGE, affine(0, 1, 0, 0), (120, 90)), IMAGE)
    shifted = warp(IMAGE, affine(0, 1, 5, 3), (40, 30))
    np.testing.assert_array_equal(shifted, IMAGE[3:33, 5:45])


def test_half_pixel_shift_averages_neighbours_rounding_half_up():
    image = np.array([[[10, 0, 255], [21, 100, 0]]], dtype=np.uint8)
    out = warp(image, affine(0, 1, 0.5, 0), (1, 1))
    assert out.tolist() == [[[16, 50, 128]]]  # (10 + 21) / 2 = 15.5 -> 16, (255 + 0) / 2 -> 128


def test_borders_black_or_edge():
    far = affine(0, 1, -500, -500)
    assert not warp(IMAGE, far, (8, 8), "constant").any()
    edge = warp(IMAGE, far, (8, 8), "replicate")
    assert (edge == IMAGE[0, 0]).all()
    right = warp(IMAGE, affine(0, 1, 1000, 10), (4, 4), "replicate")
    assert (right == IMAGE[10:14, -1][:, None]).all()  # rows 10-13 of the last column, repeated


def test_grey_uses_bt601_weights():
    pixels = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    assert grey(pixels).tolist() == [[76, 150, 29, 255]]


def test_resize_shrinks_by_area_and_keeps_the_size_it_has():
    checker = np.kron((np.indices((4, 4)).sum(0) % 2) * 255, np.ones((2, 2))).astype(np.uint8)
    assert resize(checker, 4).tolist() == [[0, 255, 0, 255], [255, 0, 255, 0]] * 2
    assert resize(checker[:2, :2], 2) is not None and resize(IMAGE[:64, :64], 64).shape == (64, 64, 3)
    assert resize(IMAGE, 224).shape == (224, 224, 3)


def test_matches_opencv_bit_for_bit_where_it_is_installed():  # as MediaPipe warps: warpPerspective
    cv2 = pytest.importorskip("cv2", reason="OpenCV is not a dependency; the parity check runs where it is installed")
    if int(cv2.__version__.split(".")[0]) >= 5:
        pytest.skip(f"OpenCV {cv2.__version__} resamples differently from 4.x, the warps MediaPipe's models saw")
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    for trial in range(40):
        height, width = RNG.integers(20, 400, 2)
        image = RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)
        matrix = affine(RNG.uniform(-math.pi, math.pi) * (trial % 2), RNG.uniform(0.2, 4),
                        RNG.uniform(-100, width), RNG.uniform(-100, height))
        size = (int(RNG.integers(20, 300)), int(RNG.integers(20, 300)))
        for border, mode in (("constant", cv2.BORDER_CONSTANT), ("replicate", cv2.BORDER_REPLICATE)):
            expected = cv2.warpPerspective(image, np.vstack([matrix, [0, 0, 1]]), size, flags=flags, borderMode=mode)
            np.testing.assert_array_equal(warp(image, matrix, size, border), expected, err_msg=f"{trial} {border}")
    np.testing.assert_array_equal(grey(IMAGE), cv2.cvtColor(IMAGE, cv2.COLOR_RGB2GRAY))
