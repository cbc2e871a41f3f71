"""Image resampling without OpenCV: the warps MediaPipe's detector and mesh were trained on, and plain resizes.

`warp` reproduces OpenCV's `warpPerspective(..., INTER_LINEAR | WARP_INVERSE_MAP)` for an affine map bit for bit,
because MediaPipe's CPU graphs cut their inputs that way and the face models' outputs follow the input's exact
pixels (a float bilinear warp put the blendshapes up to 0.045 off MediaPipe's; this one, 0.003): each output
pixel's source position is rounded to a 1/32 pixel grid and its four neighbours mixed with OpenCV's fixed-point
weights. Those are 32 * wy * wx out of 2 ** 15 with wy, wx in 0..32 (exact products of multiples of 1/32), so
the same sums come from two integer lerps and one shift: ((p00 (32 - fx) + p01 fx) (32 - fy) + (...) fy + 512)
>> 10.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

GRID = 32  # OpenCV's INTER_TAB_SIZE: source positions are rounded to 1/32 pixel
BLOCK = 32  # OpenCV's BLOCK_SZ: the map is computed per block, which sets the order of its float additions


def source_positions(matrix: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Each output pixel's source position in 1/32 pixels, (height, width) int arrays, as OpenCV computes it:
    per block of rows, x = M00 x_block + M01 y + M02, then + M00 x_in_block, times 32, rounded half to even."""
    rows = min(BLOCK // 2, height)
    cols = min(BLOCK * BLOCK // rows, width)
    u = np.arange(width)
    block_start, in_block = (u // cols) * cols, (u % cols).astype(np.float64)
    y = np.arange(height, dtype=np.float64)[:, None]
    m = np.asarray(matrix, np.float64)
    xs = (m[0, 0] * block_start + m[0, 1] * y + m[0, 2] + m[0, 0] * in_block) * GRID
    ys = (m[1, 0] * block_start + m[1, 1] * y + m[1, 2] + m[1, 0] * in_block) * GRID
    return np.rint(xs).astype(np.int64), np.rint(ys).astype(np.int64)


def warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int],
         border: Literal["constant", "replicate"] = "constant") -> np.ndarray:
    """An RGB uint8 image resampled through an affine map from output pixels to source pixels (`matrix`, 2x3 or
    3x3 with last row 0 0 1) into a (height, width) = `size[::-1]` uint8 image; outside the source, black
    ("constant") or the nearest edge pixel ("replicate")."""
    width, height = size
    xs, ys = source_positions(matrix, width, height)
    source = np.asarray(image, np.uint8).reshape(*image.shape[:2], -1)
    if matrix[0][1] == 0 and matrix[1][0] == 0:
        p00, p01, p10, p11 = _axis_aligned_neighbours(source, xs[0] >> 5, ys[:, 0] >> 5, border)
    else:
        p00, p01, p10, p11 = _neighbours(source, xs >> 5, ys >> 5, border)
    channels = source.shape[2]  # the fractions repeated per channel: same-shape operands run long inner loops
    fx = np.repeat((xs & (GRID - 1)).astype(np.uint16)[..., None], channels, axis=-1)
    fy = np.repeat((ys & (GRID - 1)).astype(np.uint32)[..., None], channels, axis=-1)
    top = p00 * (GRID - fx) + p01 * fx  # uint16: at most 255 * 32
    bottom = p10 * (GRID - fx) + p11 * fx
    out = (top * (GRID - fy) + bottom * fy + 512) >> 10  # uint32: at most 255 * 32 * 32
    return out.astype(np.uint8).reshape(height, width, *image.shape[2:])


def _neighbours(source: np.ndarray, x0: np.ndarray, y0: np.ndarray, border: str) -> np.ndarray:
    """The four neighbours (top-left, top-right, bottom-left, bottom-right) of each output pixel, (4, h, w, c).
    Only the part of the image the map reaches is read, padded by two pixels of black or edge: a neighbour position
    clamped into that padding reads what OpenCV's border gives, with no per-neighbour checks."""
    src_height, src_width, channels = source.shape
    x0, y0 = x0.clip(-2, src_width), y0.clip(-2, src_height)
    left, top = min(max(int(x0.min()), 0), src_width - 1), min(max(int(y0.min()), 0), src_height - 1)
    right = min(max(int(x0.max()) + 2, left + 1), src_width)  # at least one pixel: the edge nearest the map
    bottom = min(max(int(y0.max()) + 2, top + 1), src_height)
    mode = {"constant": "constant", "replicate": "edge"}[border]
    region = np.pad(source[top:bottom, left:right], ((2, 2), (2, 2), (0, 0)), mode=mode)
    stride = region.shape[1]
    base = ((y0 - top).clip(-2, bottom - top) + 2) * stride + ((x0 - left).clip(-2, right - left) + 2)
    index = base + np.array([0, 1, stride, stride + 1])[:, None, None]
    return region.reshape(-1).view(f"V{channels}").take(index).view(np.uint8).reshape(*index.shape, channels)


def _axis_aligned_neighbours(source: np.ndarray, x0: np.ndarray, y0: np.ndarray, border: str) -> np.ndarray:
    """`_neighbours` for a map without rotation or shear (the detector's letterbox): each output row reads two
    source rows and each column two source columns, so only those are gathered, never a copy of the whole frame."""
    src_height, src_width, channels = source.shape
    rows, cols = np.stack([y0, y0 + 1]), np.stack([x0, x0 + 1])  # (2, h), (2, w)
    index = rows.clip(0, src_height - 1)[:, None, :, None] * src_width + cols.clip(0, src_width - 1)[None, :, None]
    pixels = source.reshape(-1).view(f"V{channels}").take(index).view(np.uint8).reshape(*index.shape, channels)
    if border == "constant":  # black where a neighbour row or column lies outside the image
        for k in range(2):
            pixels[k, :, (rows[k] < 0) | (rows[k] >= src_height)] = 0
            pixels[:, k, :, (cols[k] < 0) | (cols[k] >= src_width)] = 0
    return pixels.reshape(4, len(y0), len(x0), channels)


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """An image resized to size x size: area averaging when shrinking (no aliasing), bilinear when enlarging."""
    from PIL import Image

    if image.shape[:2] == (size, size):
        return image
    shrink = max(image.shape[:2]) > size
    resized = Image.fromarray(np.ascontiguousarray(image)).resize(
        (size, size), Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)
    return np.array(resized)


def grey(image: np.ndarray) -> np.ndarray:
    """RGB uint8 -> grey uint8 with ITU-R BT.601 weights, rounded as OpenCV's RGB2GRAY (15-bit fixed point), the
    conversion fer's expression model was trained behind."""
    rgb = image.astype(np.int32)
    return ((rgb[..., 0] * 9798 + rgb[..., 1] * 19235 + rgb[..., 2] * 3735 + (1 << 14)) >> 15).astype(np.uint8)


def pad_to_square(image: np.ndarray) -> np.ndarray:
    """face-api.js's padToSquare(image, isCenterImage=true): black on both sides of the shorter axis, the larger
    half (JavaScript's Math.round of half the difference) after the image, the rest before it."""
    height, width = image.shape[:2]
    diff = abs(height - width)
    after = (diff + 1) // 2  # Math.round(diff / 2): halves round up
    pads = [(diff - after, after), (0, 0)] if height < width else [(0, 0), (diff - after, after)]
    return np.pad(image, pads + [(0, 0)] * (image.ndim - 2))


def resize_bilinear_tf(image: np.ndarray, size: int) -> np.ndarray:
    """tf.image.resizeBilinear(image, [size, size], alignCorners=false, halfPixelCenters=false) as TensorFlow.js's
    CPU backend computes it (in float64, stored as float32): output pixel i reads source position i * in / out,
    so the last rows and columns lean on the image's bottom and right edge."""

    def taps(length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        position = length / size * np.arange(size, dtype=np.float64)
        low = np.floor(position)
        return low.astype(np.int64), np.minimum(np.ceil(position), length - 1).astype(np.int64), position - low

    top, bottom, row_frac = taps(image.shape[0])
    left, right, col_frac = taps(image.shape[1])
    channels = (1,) * (image.ndim - 2)
    col_frac, row_frac = col_frac.reshape(-1, *channels), row_frac.reshape(-1, 1, *channels)

    def across(rows: np.ndarray) -> np.ndarray:
        return rows[:, left] + (rows[:, right] - rows[:, left]) * col_frac

    pixels = np.asarray(image, np.float64)
    upper, lower = across(pixels[top]), across(pixels[bottom])
    return np.ascontiguousarray(upper + (lower - upper) * row_frac, np.float32)
