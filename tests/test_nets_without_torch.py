"""The expression experts, the face descriptor and the speaker features run under the onnx runtime where torch
cannot be imported: their modules prepare inputs and read outputs in numpy, and build the PyTorch networks
(backbones/*_net.py) only where the runtime is torch. Each check runs in a fresh interpreter whose imports of torch
and transformers fail."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

CODE = textwrap.dedent("""
    import importlib.abc, sys

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "transformers"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, Refuse())
    import numpy as np
    from viper import runtime
    from viper.extractors import create_extractor
    from viper.faces import Face
    from viper.tracks import describe_faces

    runtime.force("onnx")
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for _ in range(2)]
    boxes = [(frame, np.array([16.0, 16.0, 80.0, 80.0])) for frame in frames]
    general = create_extractor("expression")
    general.ensure_loaded()
    experts = general.expert_log_probs(boxes)
    assert sorted(experts) == ["affectnet", "face_api", "fer"] and all(v.shape == (2, 7) for v in experts.values())
    descriptors = describe_faces(frames, [[Face((16.0, 16.0, 80.0, 80.0))] for _ in frames])
    assert [d.shape for d in descriptors] == [(1, 128), (1, 128)]
    audio = create_extractor("audio")
    audio.ensure_loaded()
    embeddings = audio.embed([rng.normal(0, 0.1, n).astype(np.float32) for n in (400, 16000)])
    assert embeddings.shape == (2, 256) and np.allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-5)
    print(sorted(runtime.open_sessions()), "torch" in sys.modules)
""")


def test_expression_descriptor_and_speaker_features_need_no_torch():
    env = {**os.environ, "VIPER_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    sessions = ["affectnet_emotions.onnx", "face_api_expression.onnx", "face_api_recognition.onnx",
                "fer_mini_xception.onnx", "resemblyzer_ge2e.onnx"]
    assert out.stdout.strip() == f"{sessions} False"
