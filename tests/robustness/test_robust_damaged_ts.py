"""One damaged byte in an MPEG-TS file: a packet whose stream id (PID) changed makes FFmpeg add a stream mid-file,
which PyAV's demuxer answers with an IndexError. The audio reader crashed `viper predict` on it (the other videos
of the command were not scored) and `viper extract` failed the clip with the internal error as its reason; now it
is that file's read error, as for the video packets. Found as benchmarks/fuzz_video.py finds such cases."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from viper.cli import app
from viper.errors import VideoReadError
from viper.jobs.demo import demo_clips
from viper.video import read_audio

TAKE = demo_clips() / "01-01-03-02-01-01-05.mp4"
REASON = "cannot read audio packets (a stream appears mid-file)"


def as_transport_stream(path: Path, loops: int = 3) -> Path:
    """The bundled take played `loops` times, remuxed into MPEG-TS (12 s: FFmpeg reads the first seconds when it
    opens the file, so a stream that appears later is one it meets while demuxing)."""
    with av.open(str(TAKE)) as source, av.open(str(path), "w", format="mpegts") as out:
        streams = [stream for stream in source.streams if stream.type in ("video", "audio")]
        copies = {stream.index: out.add_stream_from_template(stream) for stream in streams}
        for loop in range(loops):
            source.seek(0)
            for packet in source.demux(*streams):
                if packet.dts is None:
                    continue
                shift = round(loop * 4.0 / packet.time_base)
                packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                packet.stream = copies[packet.stream.index]
                out.mux(packet)
    return path


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> Path:
    """The TS take with one byte changed: the PID of its last audio packet that starts a frame, 0x101 -> 0x181."""
    folder = tmp_path_factory.mktemp("ts")
    data = bytearray(as_transport_stream(folder / "take.ts").read_bytes())
    starts = [at for at in range(0, len(data), 188)
              if data[at + 1] & 0x40 and ((data[at + 1] & 0x1F) << 8 | data[at + 2]) == 0x101]
    data[starts[-1] + 2] ^= 0x80
    path = folder / "damaged.ts"
    path.write_bytes(bytes(data))
    return path


def meets_a_new_stream(path: Path) -> bool:
    """Whether this PyAV's FFmpeg meets the damage as a stream appearing mid-file (PyAV 18's does; PyAV 19's reads
    the file through without one, and then there is nothing to handle)."""
    try:
        with av.open(str(path)) as container:
            for _ in container.demux():
                pass
    except IndexError:
        return True
    return False


@pytest.fixture(scope="module")
def mid_file_stream(damaged) -> Path:
    if not meets_a_new_stream(damaged):
        pytest.skip(f"PyAV {av.__version__}'s FFmpeg reads the damaged file without a new stream mid-file")
    return damaged


def test_the_audio_reader_names_the_file_and_the_damage(mid_file_stream):
    damaged = mid_file_stream
    assert read_audio(damaged.parent / "take.ts").length > 0  # the undamaged TS reads
    with pytest.raises(VideoReadError, match=f"^{damaged}: {REASON.replace('(', '[(]').replace(')', '[)]')}$"):
        read_audio(damaged)


def test_predict_scores_the_other_videos(damaged):
    """Whatever this FFmpeg makes of the damage, the other video is scored; where it meets a new stream, the damaged
    file gets the one-line read error."""
    result = CliRunner().invoke(app, ["predict", str(damaged), str(TAKE)], catch_exceptions=False)
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert str(TAKE) in [record["video"] for record in records] and "Traceback" not in result.output
    if meets_a_new_stream(damaged):
        assert result.exit_code == 1
        assert result.stderr.strip().splitlines()[-1] == f"error: {damaged}: {REASON}"
    else:
        assert result.exit_code == 0 and len(records) == 2


def test_extract_fails_the_clip_with_its_read_error(mid_file_stream, tmp_path):
    damaged = mid_file_stream
    result = CliRunner().invoke(app, ["extract", str(damaged), "--out", str(tmp_path / "store"), "-n", "4",
                                      "-e", "audio"], catch_exceptions=False)
    assert result.exit_code == 1 and f"FAILED {damaged}: {REASON}" in result.stderr
    assert "IndexError" not in result.output and "list index" not in result.output
