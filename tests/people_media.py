"""Two real people for the which-person tests and benchmarks: actor 05 (the bundled takes) and Grace Hopper
(matplotlib's sample portrait), in the generated room of test_tracks."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from faces_media import SMILING, SURPRISED, take_frames, write_clip
from test_tracks import room, smaller

from viper.faces import FaceDetector, create_face_detector, crop_square

FPS = Fraction(25, 6)
FRAMES, WITH_HER = 40, 24  # he is on all 40 frames; she, larger than him, on the first 24


def grace_hopper(side: int = 224, detector: FaceDetector | None = None) -> np.ndarray:
    """Grace Hopper's face cut from matplotlib's sample portrait (`side` px): another real person than actor 05."""
    import matplotlib.cbook
    from PIL import Image

    portrait = np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
                          .convert("RGB"))
    (face,) = (detector or create_face_detector()).detect([portrait])
    return crop_square(portrait, face.box, 0.1, side)


def two_people_clip(path: Path, her: np.ndarray | None = None) -> Path:
    """A 9.6 s mp4: actor 05 (small, left) on every frame, Grace Hopper (large, right) on the first 24: the largest
    face is hers, then his; he is on the most frames."""
    her = grace_hopper() if her is None else her
    him = [smaller(frame) for frame in (take_frames(SMILING) + take_frames(SURPRISED)[:12])]
    frames = [room(left=him[i % len(him)], **({"right": her} if i < WITH_HER else {})) for i in range(FRAMES)]
    return write_clip(path, frames, fps=FPS)
