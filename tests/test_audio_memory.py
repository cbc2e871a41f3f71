"""Audio read as a stream into a temp file: fragments equal to a whole-track decode, flat memory for long
recordings, and Resemblyzer's slices of long fragments equal to the whole."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import textwrap

import av
import numpy as np
import pytest
from media import make_audio_only, make_clip

from viper.errors import VideoReadError
from viper.extractors import create_extractor
from viper.extractors.audio_resemblyzer import HOP
from viper.sampled_video import sample_video
from viper.video import read_audio


def whole_track(path) -> tuple[np.ndarray, float]:
    """The reference: the first audio track decoded and resampled to 16 kHz mono all at once, in memory."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
    chunks, start = [], None
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            if start is None and frame.pts is not None:
                start = float(frame.pts * frame.time_base)
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
        chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.concatenate(chunks), start or 0.0


@pytest.mark.parametrize(
    ("rate", "layout", "delay", "seconds"),
    [(16000, "mono", 0.0, 3.0), (48000, "stereo", 0.0, 3.0), (22050, "mono", 0.7, 1.5)],  # last: late and short
)
def test_fragments_equal_a_whole_track_decode(tmp_path, rate, layout, delay, seconds):
    path = make_clip(tmp_path / "clip.mp4", frames=30, fps=10, audio_seconds=seconds, audio_rate=rate,
                     audio_layout=layout, audio_start=delay)
    clip = sample_video(path, 8, None, face_crop=False)
    samples, start = whole_track(path)
    assert (clip.audio.start, clip.audio.length) == (start, len(samples))
    for (begin, end), fragment in zip(clip.windows, clip.audio_fragments(), strict=True):
        first = max(0, round((begin - start) * 16000))
        last = min(len(samples), round((end - start) * 16000))
        np.testing.assert_array_equal(np.asarray(fragment), samples[first:max(first, last)])
    assert clip.audio.rms == pytest.approx(np.sqrt(np.mean(np.square(samples, dtype=np.float64))), rel=1e-12)
    assert clip.audio_mask.any()
    if delay:  # the audio starts after the first frames and ends before the last ones
        assert not clip.audio_mask[0] and not clip.audio_mask[-1]


def test_fragment_slices_and_gain(tmp_path):
    fragment = sample_video(make_audio_only(tmp_path / "voice.m4a"), 4, None).audio_fragments()[1]
    whole = np.asarray(fragment)
    assert len(whole) == len(fragment) > 100
    np.testing.assert_array_equal(fragment[10:100], whole[10:100])
    np.testing.assert_array_equal(fragment[-5:], whole[-5:])
    np.testing.assert_array_equal(np.asarray(dataclasses.replace(fragment, gain=2.0)), whole * 2.0)


def test_the_temp_file_goes_with_the_track(tmp_path):
    track = read_audio(make_audio_only(tmp_path / "voice.m4a", seconds=0.5))
    handle = track.file
    assert not handle.closed and os.fstat(handle.fileno()).st_nlink == 0  # unlinked: no name to leave behind
    del track
    assert handle.closed


def test_an_unusable_temp_folder_is_named(tmp_path, monkeypatch):
    path = make_audio_only(tmp_path / "voice.m4a", seconds=0.5)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    with pytest.raises(VideoReadError, match="temp file in .*missing.*TMPDIR"):
        read_audio(path)


def test_resemblyzer_slices_of_a_long_batch_equal_the_whole(one_torch_thread):
    """A batch longer than `slice_frames` in all goes through the LSTM in slices, its state carried across: each
    fragment's embedding is the one it gets in a single pass, whatever lengths its batch mates have."""
    sliced, whole = create_extractor("audio", {"slice_frames": 60}), create_extractor("audio")
    sliced.ensure_loaded()
    whole.ensure_loaded()
    rng = np.random.default_rng(0)
    fragments = [rng.normal(0, 0.1, 3000 + 2500 * i).astype(np.float32) for i in range(10)]  # 19 to 160 frames
    assert 1 + len(fragments[0]) // HOP > 60 // len(fragments)  # every fragment takes several slices
    np.testing.assert_allclose(sliced.embed(fragments), whole.embed(fragments), atol=1e-5)


# VmHWM: this process's own peak (ru_maxrss would keep the pytest parent's peak across fork + exec)
READ_ALL = textwrap.dedent("""
    import sys
    import av, numpy as np
    from viper.sampled_video import sample_video
    def peak_mb():
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
    before = peak_mb()
    clip = sample_video(sys.argv[1], 32, None)
    total = sum(len(np.asarray(fragment)) for fragment in clip.audio_fragments())
    print(total, peak_mb() - before)
""")


@pytest.mark.slow
def test_a_long_recording_reads_in_flat_memory(tmp_path):
    """20 minutes of audio (77 MB as float32 at 16 kHz; decoding it whole took three times that) are read, and
    every fragment used, with memory growing by less than the track itself."""
    path = make_audio_only(tmp_path / "long.m4a", seconds=20 * 60)
    out = subprocess.run([sys.executable, "-c", READ_ALL, str(path)], capture_output=True, text=True, check=True)
    total, grown_mb = out.stdout.split()
    assert int(total) == pytest.approx(20 * 60 * 16000, rel=0.001)
    assert float(grown_mb) < 40
