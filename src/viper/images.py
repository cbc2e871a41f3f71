"""Still images (a photo, a face crop): one frame, read upright. A photo decoded as a video would be scored as N
identical frames; told apart by content (Pillow's or FFmpeg's identification of the file), not by its name."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import VideoReadError
from .video import VIDEO_SUFFIXES, open_media

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".avif", ".jp2", ".qoi",
                  ".ppm", ".pgm", ".dpx", ".exr")  # what a folder scan takes as images; a file given is read by content
# Pillow readers whose files start with a signature (Pillow's TGA or MPEG readers would claim other files)
PILLOW_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "PPM", "AVIF", "JPEG2000", "QOI")


def read_image(path: Path, max_side: int = 1280) -> np.ndarray | None:
    """The RGB pixels (H, W, 3) uint8 of a still image, turned upright by its EXIF orientation and scaled so its
    longer side is at most `max_side` (as video frames are); None when the file is no still image (a video, an
    animated GIF). A damaged image raises VideoReadError naming the file."""
    from PIL import Image

    path = Path(path)
    Image.init()
    try:
        image = Image.open(path, formats=[name for name in PILLOW_FORMATS if name in Image.OPEN])
    except Image.DecompressionBombError as error:
        raise VideoReadError(f"{path}: the image is too large to read ({error})") from error
    except OSError:  # not a picture Pillow reads; or missing, empty, a folder: the video reader's message says which
        # FFmpeg's probe costs a video 5-15 ms; a picture only FFmpeg reads (DPX, EXR) is not named as a video
        return None if path.suffix.lower() in VIDEO_SUFFIXES else _ffmpeg_image(path, max_side)
    with image:
        if getattr(image, "is_animated", False) and image.format != "MPO":  # MPO: a camera's photo and its previews
            return None
        try:
            return _upright_rgb(image, max_side)
        except (OSError, ValueError, SyntaxError) as error:  # truncated or corrupt data
            raise VideoReadError(f"{path}: the image cannot be decoded ({error})") from error


def _upright_rgb(image, max_side: int) -> np.ndarray:
    """Pillow image -> RGB array: decoded at a reduced scale where the format allows (JPEG), EXIF-rotated,
    transparency over white, 16-bit grey scaled to 8 bits, longer side at most `max_side`."""
    from PIL import Image, ImageOps

    image.draft("RGB", (max_side, max_side))  # a 12-megapixel JPEG decodes at 1/2 or 1/4: the same pixels, faster
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I;16"):
        image = Image.fromarray((np.asarray(image, np.float64) / 257).round().astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image)
    image = image.convert("RGB")
    scale = max_side / max(image.size)
    if scale < 1:
        image = image.resize((max(2, round(image.width * scale)), max(2, round(image.height * scale))),
                             Image.Resampling.BICUBIC)
    return np.asarray(image)


def _ffmpeg_image(path: Path, max_side: int) -> np.ndarray | None:
    """A picture Pillow does not read but FFmpeg's image demuxers do (DPX, EXR, ...); None for anything else."""
    import av

    from .video import frame_to_rgb, lfs_pointer

    container = open_media(path)
    try:
        name = container.format.name
        if not (name == "image2" or name.endswith("_pipe")) or not container.streams.video:
            return None
        try:
            frame = next(container.decode(container.streams.video[0]), None)
        except av.FFmpegError as error:  # FFmpeg's image2 takes any file by its name: say what it really holds
            raise VideoReadError(lfs_pointer(path) or f"{path}: the image cannot be decoded ({error})") from error
        if frame is None:
            raise VideoReadError(f"{path}: the image cannot be decoded")
        return frame_to_rgb(frame, max_side)
    finally:
        container.close()
