"""A silent audio track is no evidence: coverage counts a frame's audio only when its fragment holds sound above
SOUND_FLOOR_DBFS (stock footage often carries a track of digital silence, and such a video without a face was said
to be scored "from audio only")."""

from __future__ import annotations

import numpy as np
import pytest
from faces_media import SMILING, scene, take_speech, write_clip

import viper
from viper.audio_track import SOUND_FLOOR_DBFS, AudioTrack


def test_a_fragment_holds_sound_above_the_floor():
    track = AudioTrack(16_000)
    for level in (SOUND_FLOOR_DBFS + 3, SOUND_FLOOR_DBFS - 3, -np.inf):  # a second of noise at each RMS level
        noise = np.random.default_rng(0).standard_normal(16_000)
        track.append((noise / np.sqrt(np.mean(noise**2)) * 10 ** (level / 20)).astype(np.float32))
    track.file.flush()
    loud, quiet, silent = track.fragments(np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]]))
    assert loud.holds_sound() and not quiet.holds_sound() and not silent.holds_sound()
    assert not track.fragments(np.array([[5.0, 6.0]]))[0].holds_sound()  # past the track's end: no samples


@pytest.mark.parametrize("speech, audio, first_warning", [
    ("silence", 0, "no face found: the face-based features are all missing"),
    ("a bundled take's speech", (4, 7), "no face found: scores come from audio only"),
])
def test_coverage_counts_only_fragments_that_hold_sound(tiny_demo_run, tmp_path, speech, audio, first_warning):
    """A room without a face, 3.6 s, through a run that reads audio (N = 8): with a track of digital silence no
    frame has audio; with the take's speech the frames during speech do, and those of its silent start and end do not
    (6 of 8)."""
    samples = np.zeros(57_600, np.float32) if speech == "silence" else take_speech(SMILING)
    clip = write_clip(tmp_path / "room.mp4", [scene()] * 15, speech=samples)
    (record,), failures = viper.predict(clip, checkpoint=tiny_demo_run / "run")
    assert failures == [] and record["warnings"][0] == first_warning
    if audio == 0:
        assert record["coverage"]["audio"] == 0 and record["warnings"][1].startswith("no audio")
    else:
        assert audio[0] <= record["coverage"]["audio"] <= audio[1], record["coverage"]
