"""Bad and odd still images through the real CLI: a damaged image is `error: <path>: ...` (exit 1, the other files
scored), never a traceback; an image given to `extract` is N copies of its one frame."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
from faces_media import SMILING, on_scene, take_frames
from PIL import Image
from typer.testing import CliRunner

from viper.cli import app
from viper.store import FeatureStore


def viper(*args: str):
    """`viper ARGS` in this process; an exception the CLI does not turn into a message fails the test."""
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def huge_png(path) -> None:
    """A 200-byte PNG whose header claims 30000 x 30000 pixels (900 megapixels): a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(64)))
                     + chunk(b"IEND", b""))


BAD = {  # name -> (how to make it, what the message says)
    "truncated.jpg": (lambda path, good: path.write_bytes(good.read_bytes()[:4000]), "the image cannot be decoded"),
    "text.jpg": (lambda path, good: path.write_text("not a picture"), "the image cannot be decoded"),
    "empty.png": (lambda path, good: path.write_bytes(b""), "file is empty (0 bytes)"),
    "bomb.png": (lambda path, good: huge_png(path), "the image is too large to read"),
    "pointer.jpg": (lambda path, good: path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\n"),
                    "a Git LFS pointer"),
}


@pytest.mark.parametrize("name", BAD)
def test_a_bad_image_is_one_message_and_the_others_are_scored(tmp_path, name):
    good = tmp_path / "good.jpg"
    Image.fromarray(on_scene(take_frames(SMILING)[5])).save(good, quality=95)
    make, expected = BAD[name]
    make(tmp_path / name, good)
    result = viper("predict", str(tmp_path / name), str(good))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"error: {tmp_path / name}: " in result.stderr and expected in result.stderr
    record = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
    assert record["media"] == "image" and record["coverage"]["face"] == 1


def test_extract_takes_an_image_as_n_copies_of_its_frame(tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(on_scene(take_frames(SMILING)[5])).save(photo)
    result = viper("extract", str(photo), "--out", str(tmp_path / "store"), "-n", "4", "-e", "expression")
    assert result.exit_code == 0, result.output
    meta = FeatureStore.open(tmp_path / "store").clip_meta("photo")
    assert meta["face_mask"] == [True] * 4 and meta["repeated_frames"] == 3 and not meta["has_audio"]
    assert np.allclose(meta["times"], 0.0)
