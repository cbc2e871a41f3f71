"""Time and peak memory of `viper predict --window 10` (the general model) on recordings of growing length.

    python benchmarks/window_trace.py [--minutes 1 5 15] [--window 10] [--long] [--size 448x320]
                                      [--faces main largest]

Each recording is a real face (the bundled actor-05 takes, looped, each frame held for 6 frames: 25 fps) in a
generated scene of `--size` (default 448x320; 1280x720 for an HD interview) with his speech, written once under
benchmarks/out/; `--long` adds 60 minutes. Each
measurement is a fresh process (its own peak RSS, VmHWM) calling `viper.predict(path, window=S, faces=F)` for each
`--faces` choice (main, the default, follows people across the windows; largest does not); the figures are its wall
time, seconds per minute of recording, windows per second and peak memory, with the machine's load.

Three runs are recorded as figures (docs/figures/NAME.json, shown in docs/guide/traces.md); any other only prints:

    python benchmarks/window_trace.py --long                                  # window-trace
    python benchmarks/window_trace.py --size 1280x720                         # window-trace-720p
    python benchmarks/window_trace.py --minutes 1 15 --faces main largest     # window-trace-faces
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

import figures
import numpy as np
from memory import OUT, PEAK, SRC, measure

TRACE = textwrap.dedent(f"""
    import sys, time
    import viper
    started = time.perf_counter()
    results, failures = viper.predict(sys.argv[1], window=float(sys.argv[2]), faces=sys.argv[3])
    assert not failures and results, failures
    print(len(results), {PEAK}, time.perf_counter() - started)
""")
HOLD = 6  # each 25/6 fps take frame shown for 6 frames: 25 fps
# the documented runs, with --window 10: (size, minutes, faces) -> the figure they record
FIGURES = {("448x320", (1, 5, 15, 60), ("main",)): "window-trace",
           ("1280x720", (1, 5, 15), ("main",)): "window-trace-720p",
           ("448x320", (1, 15), ("main", "largest")): "window-trace-faces"}
# what viper.predict(window=...) runs: windows, decoding, faces and people, extractors, the general model
MEASURES = ["src/viper/jobs/predict.py", "src/viper/jobs/clip_prediction.py", "src/viper/windows.py",
            "src/viper/video.py", "src/viper/sampled_video.py", "src/viper/audio_track.py", "src/viper/extraction.py",
            "src/viper/extractors", "src/viper/backbones", "src/viper/face_detectors", "src/viper/faces.py",
            "src/viper/face_choice.py", "src/viper/persons.py", "src/viper/tracks.py", "src/viper/general_model.py",
            "src/viper/runtime.py"]


def recording(minutes: int, size: tuple[int, int]) -> Path:
    """`minutes` of the bundled takes looped (real faces and speech) in a scene of `size`, at 25 fps, encoded as a
    stream."""
    import av

    sys.path.insert(0, str(SRC.parent / "tests"))
    from faces_media import SPEECH_RATE, on_scene, take_frames, take_speech

    from viper.jobs.demo import demo_clips

    path = OUT / f"trace_{minutes}min.mp4" if size == (448, 320) else OUT / f"trace_{minutes}min_{size[1]}p.mp4"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in demo_clips().glob("*.mp4"))
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = *size, "yuv420p"
        audio = container.add_stream("aac", rate=SPEECH_RATE, layout="mono")
        shown = spoken = 0
        for index in range(10**9):
            if shown >= minutes * 60 * 25:
                break
            name = names[index % len(names)]
            for face in take_frames(name):
                image = av.VideoFrame.from_ndarray(np.ascontiguousarray(on_scene(face, size)), format="rgb24")
                for _ in range(HOLD):
                    container.mux(video.encode(image))
                    shown += 1
            speech = take_speech(name)[: len(take_frames(name)) * HOLD * SPEECH_RATE // 25]
            chunk = audio.codec_context.frame_size or 1024
            for start in range(0, len(speech), chunk):
                frame = av.AudioFrame.from_ndarray(speech[None, start : start + chunk], format="flt", layout="mono")
                frame.sample_rate, frame.pts = SPEECH_RATE, spoken + start
                container.mux(audio.encode(frame))
            spoken += len(speech)
        container.mux(video.encode())
        container.mux(audio.encode())
    tmp.rename(path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, nargs="+", default=[1, 5, 15])
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--long", action="store_true", help="add a 60-minute recording")
    parser.add_argument("--size", default="448x320", help="frame size WIDTHxHEIGHT")
    parser.add_argument("--faces", nargs="+", default=["main"], choices=["main", "largest"])
    args = parser.parse_args(argv)
    minutes = sorted(set(args.minutes + ([60] if args.long else [])))
    began, rows = figures.begin(), []
    print(f"load before: {' '.join(f'{v:.1f}' for v in os.getloadavg())}; {os.cpu_count()} CPUs")
    print(f"{'faces':>8} {'minutes':>8} {'windows':>8} {'seconds':>9} {'s/min':>7} {'windows/s':>10} {'peak GB':>8}")
    for length in minutes:
        path = recording(length, tuple(int(side) for side in args.size.split("x")))
        for faces in args.faces:
            windows, peak, seconds = measure(TRACE, SRC, str(path), str(args.window), faces)
            print(f"{faces:>8} {length:>8} {int(windows):>8} {seconds:>9.1f} {seconds / length:>7.1f} "
                  f"{windows / seconds:>10.2f} {peak:>8.2f}")
            rows.append({"recording": f"{length} minute{'s' * (length > 1)}", "faces": f"`{faces}`",
                         "windows": int(windows), "seconds": seconds, "per minute": seconds / length, "peak": peak})
    print(f"load after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    name = FIGURES.get((args.size, tuple(minutes), tuple(args.faces))) if args.window == 10 else None
    if name is None:
        print("not recorded as a figure: not one of the documented runs (see the docstring)")
        return
    faces = [("faces", "`--faces`")] if len(args.faces) > 1 else []
    figures.record(name, rows, began=began, measures=MEASURES,
                   columns=[("recording", "recording"), *faces, ("windows", "windows"),
                            ("seconds", "time (incl. loading)", "{:.1f} s"),
                            ("per minute", "per minute of recording", "{:.1f} s"),
                            ("peak", "peak memory", "{:.2f} GB")],
                   notes=f"a real face looped at 25 fps, {args.size.replace('x', '×')}, with speech; the general "
                         f"model, windows of {args.window:g} s, `--faces {' '.join(args.faces)}`; a fresh process each")


if __name__ == "__main__":
    main()
