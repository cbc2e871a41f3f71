"""The inspect page's traces: the per-frame values a model reads that have names (action units or blendshapes,
emotion probabilities) drawn over the clip's time, grouped in panels, each emotion in its one colour."""

from __future__ import annotations

import base64
import html
import io
import re
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..checkpoint import ModelBundle
    from ..extractors.base import Features
    from ..sampled_video import SampledVideo
    from .predict import ClipPrediction

MOST_MOVING = 10  # lines per trace panel at most
TRACED = ("fau", "expression")  # modalities whose per-frame values have names worth a trace
EMOTION_COLOURS = {"neutral": "#7f7f7f", "calm": "#8c564b", "happy": "#ff7f0e", "sad": "#1f77b4", "angry": "#d62728",
                   "fearful": "#9467bd", "disgust": "#2ca02c", "surprised": "#17becf"}


def emotion_colour(name: str) -> str | None:
    """An emotion's colour wherever it is drawn (None for a name that is not an emotion)."""
    return EMOTION_COLOURS.get(name)


def traced(prediction: ClipPrediction, bundle: ModelBundle) -> list[tuple[str, Features, list[str]]]:
    """(spec, features, a name per value) of each traced feature the model reads."""
    traced = []
    for feature in bundle.features:
        if feature.modality in TRACED:
            features = prediction.features[feature.key]
            names = getattr(prediction.extractors[feature.key], "feature_names", None)
            width = features.values.shape[1]
            names = list(names) if names and len(names) == width else [f"{feature.name} {i}" for i in range(width)]
            traced.append((feature.key, features, names))
    return traced


def traces_heading(prediction: ClipPrediction, bundle: ModelBundle) -> str:
    """What the traces show, named from their panels (no action units where there are none)."""
    shown = {title.split(",")[0] for _, _, names in traced(prediction, bundle) for title, _ in panels(names)}
    kinds = [kind for kind in ("action units", "blendshapes", "emotion probabilities") if kind in shown]
    if not kinds:
        return "Traces over time"
    text = " and ".join([", ".join(kinds[:-1]), kinds[-1]] if len(kinds) > 1 else kinds)
    return text[0].upper() + text[1:] + " over time"


def traces_html(prediction: ClipPrediction, bundle: ModelBundle) -> str:
    parts = []
    for key, features, names in traced(prediction, bundle):
        spec = next(feature.name for feature in bundle.features if feature.key == key)
        png = png_data(trace_figure(prediction.clips[key], features, names, spec))
        parts.append(f"<img class='traces' alt='{html.escape(spec)} traces' src='data:image/png;base64,{png}'>")
    if not parts:
        return "<p class='note'>this checkpoint uses no fau or expression features, so there are no traces</p>"
    return "<p class='note'>grey bands: frames where the features are masked (no face, or no face mesh)</p>" + "".join(
        parts
    )


def panels(names: list[str]) -> list[tuple[str, list[int]]]:
    """Upper face, lower face, and the rest (emotion probabilities), each a panel: action units (AU01..., upper
    = 1-7 and 41+) or blendshapes (brow*/eye* upper; mouth*, jaw*, cheek*, nose* lower; MediaPipe's "_neutral"
    left out)."""
    numbers = {i: int(m.group(1)) for i, name in enumerate(names) if (m := re.fullmatch(r"AU0*(\d+)", name))}
    upper = [i for i, number in numbers.items() if number <= 7 or number >= 41]
    upper += [i for i, name in enumerate(names) if name.startswith(("brow", "eye"))]
    lower = [i for i in numbers if i not in upper]
    lower += [i for i, name in enumerate(names) if name.startswith(("mouth", "jaw", "cheek", "nose"))]
    rest = [i for i, name in enumerate(names) if i not in upper and i not in lower and name != "_neutral"]
    kind = "action units" if numbers else "blendshapes"
    groups = [(f"{kind}, upper face", upper), (f"{kind}, lower face", lower), ("emotion probabilities", rest)]
    return [(title, indices) for title, indices in groups if indices]


def most_moving(values: np.ndarray, indices: list[int], count: int = MOST_MOVING) -> list[int]:
    """The `count` values whose range over the clip is largest (a panel of 30 lines reads as none)."""
    if len(indices) <= count:
        return indices
    ranges = [np.nan_to_num(np.nanmax(values[:, i]) - np.nanmin(values[:, i])) if np.isfinite(values[:, i]).any()
              else 0.0 for i in indices]
    keep = set(np.argsort(ranges)[::-1][:count].tolist())
    return [index for position, index in enumerate(indices) if position in keep]


def trace_figure(clip: SampledVideo, features: Features, names: list[str], spec: str) -> Figure:
    """One panel per group of values, lines over frame time (an emotion in its colour), gaps and grey bands where
    masked."""
    from matplotlib.figure import Figure

    values = features.values.astype(float)
    values[~features.mask] = np.nan
    groups = panels(names)
    times = clip.times
    half = (times[-1] - times[0]) / max(1, len(times) - 1) / 2 or 0.5
    figure = Figure(figsize=(11, 2.4 * len(groups) + 0.4))
    axes = figure.subplots(len(groups), 1, sharex=True, squeeze=False)[:, 0]
    for axis, (title, indices) in zip(axes, groups, strict=True):
        if len(indices) > MOST_MOVING:
            indices = most_moving(values, indices)
            title += f": the {MOST_MOVING} that move most"
        for index in indices:
            axis.plot(times, values[:, index], marker="o", markersize=2.5, linewidth=1.2, label=names[index],
                      color=emotion_colour(names[index]))
        for t in times[~features.mask]:
            axis.axvspan(t - half, t + half, color="0.85", linewidth=0)
        axis.set_title(f"{spec}: {title}", fontsize=9, loc="left")
        shown = values[:, indices][np.isfinite(values[:, indices])]
        if not shown.size or (shown.min() >= 0 and shown.max() <= 1):  # AU intensities and probabilities
            axis.set_ylim(-0.05, 1.05)
        axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), ncol=1 + len(indices) // 10)
        axis.tick_params(labelsize=8)
    axes[-1].set_xlabel("time in the clip (s)", fontsize=9)
    axes[-1].set_xlim(times[0] - half, times[-1] + half)
    figure.tight_layout()
    return figure


def png_data(figure: Figure) -> str:
    """Base64 PNG of a figure, for a data URI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode()
