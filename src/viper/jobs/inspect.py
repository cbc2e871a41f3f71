"""`viper inspect`: one self-contained HTML page per clip showing what a model (a trained checkpoint, or viper's
general model) saw and what it said.

The page is made from the very objects `viper predict` uses (`prediction.Predictor`: the checkpoint's own
extractors, tokens and model), so it shows the prediction, not a re-enactment of it. Per clip: a header (video,
duration, N, checkpoint, extractors), the predicted score per emotion, the N sampled frames with their face box,
their time, "no face" / "no audio" marks (and "no <modality>" where a feature is masked for another reason, e.g.
no face mesh) and, when the checkpoint uses captions, the template sentence chosen for the frame; then the FAU
traces (action units and emotion probabilities over time, masked frames as gaps) when the model reads `fau` or
`expression`. A model without them gets a note instead of traces: the page shows only what the model was given.
Images are embedded as data URIs (JPEG thumbnails, PNG figure) and the style is inline: no external resource.
"""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ViperError
from ..filenames import output_paths
from ..progress import Hook, notify

if TYPE_CHECKING:
    from ..checkpoint import ModelBundle
    from ..sampled_video import SampledVideo
    from .predict import ClipPrediction

HTML_SUFFIXES = (".html", ".htm")
THUMB_WIDTH = 200
MOST_MOVING = 10  # lines per trace panel at most
TRACED = ("fau", "expression")  # modalities whose per-frame values have names worth a trace
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:90em}"
    "h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}"
    "table.meta td{padding:2px 10px 2px 0;vertical-align:top}table.meta td:first-child{color:#666}"
    ".summary{font-weight:600}.note{color:#666}"
    ".scores{border-collapse:collapse}.scores td{padding:2px 8px}.scores td.v{text-align:right;font-family:monospace}"
    ".bar{height:12px;background:#4a7bd0;border-radius:2px}.bar.neg{background:#d05a4a}tr.top td{font-weight:700}"
    ".frames{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:10px}"
    ".frame{margin:0;padding:5px;border:1px solid #ddd;border-radius:4px;background:#fafafa}"
    ".frame.missing{background:#fff4f0;border-color:#e8b4a6}.frame img{width:100%;display:block}"
    ".frame figcaption{font-size:12px;margin-top:4px}.time{color:#555}"
    ".badge{display:inline-block;font-size:11px;padding:0 5px;margin:2px 2px 0 0;border-radius:8px;color:#fff}"
    ".badge.noface{background:#c0392b}.badge.noaudio{background:#8e44ad}.badge.other{background:#7f8c8d}"
    ".caption{display:block;font-style:italic;margin-top:3px}"
    ".novideo{height:110px;background:#ddd;display:flex;align-items:center;justify-content:center;color:#666}"
    "img.traces{max-width:100%}"
)


def page_paths(videos: list[Path], out: Path) -> list[Path]:
    """Where each video's page goes: `out` itself for one video and an .html name, else `out/<stem>.html`."""
    return output_paths(videos, Path(out), HTML_SUFFIXES, "page", "--out")


def inspect(
    videos: list[Path | str], checkpoint: Path | str | None, out: Path | str, device: str = "cpu",
    hook: Hook | None = None, face_crop: bool = True, faces: str = "main",
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Write one page per readable video or image (checkpoint None: the general model; `face_crop=False`: whole
    frames as the face; `faces`: main or largest, whose face is scored); returns the pages and (path, reason) for
    videos that could not be read."""
    from ..atomic import atomic_write_text
    from .predict import predictions

    if faces == "all":
        raise ViperError("inspect shows one person per page: --faces main or largest (predict --faces all scores "
                         "each person)")
    videos = [Path(video) for video in videos]
    targets = page_paths(videos, Path(out))
    pages, failures = [], []
    scored = predictions(videos, checkpoint, device, face_crop=face_crop, faces=faces)
    for done, ((video, prediction), target) in enumerate(zip(scored, targets, strict=True), 1):
        if len(videos) > 1:
            notify(hook, "inspect", completed=done, total=len(videos))
        if isinstance(prediction, str):
            failures.append((str(video), prediction))
            continue
        try:
            atomic_write_text(target, render_page(prediction, prediction.bundle))
        except OSError as error:
            raise ViperError(f"{target}: cannot write the page ({error.strerror or error})") from error
        pages.append(target)
    return pages, failures


def render_page(prediction: ClipPrediction, bundle: ModelBundle) -> str:
    """The whole HTML page of one clip (see the module docstring for what it shows)."""
    cropped = [feature.key for feature in bundle.features if feature.face_crop]
    clip = prediction.clips[(cropped or bundle.keys)[0]]
    title = f"viper inspect: {prediction.video.name}"
    body = [
        f"<h1>{html.escape(title)}</h1>",
        _header(prediction, bundle, clip),
        _summary(prediction, bundle, clip),
        "<h2>Predicted scores</h2>",
        _scores(prediction.scores),
        "<h2>Sampled frames</h2>",
        _frames(prediction, bundle, clip, boxes=bool(cropped)),
        "<h2>Facial action units and emotion probabilities over time</h2>",
        _traces(prediction, bundle),
    ]
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )





def _header(prediction: ClipPrediction, bundle: ModelBundle, clip: SampledVideo) -> str:
    size = f"{clip.frames[0].shape[1]}×{clip.frames[0].shape[0]} px" if clip.frames is not None else "no video stream"
    still = clip.media == "image"
    if not clip.repeated:
        repeated = ""
    elif still:
        repeated = " (one still image, repeated: the model was trained on N frames)"
    else:
        repeated = f" ({clip.repeated} repeated: the clip has fewer frames)"
    epoch, pearson = bundle.info.get("epoch"), bundle.info.get("dev_mean_pearson")
    trained = [f"epoch {epoch}"] if epoch is not None else []
    trained += [f"dev mean Pearson {pearson:.3f}"] if pearson is not None else []
    extractors = ", ".join(
        f"{f.name} v{f.version} ({f.dim}-d{'' if f.face_crop else ', whole frames'})"
        for f in bundle.features
    )
    rows = [
        ("video", str(prediction.video)),
        ("duration", f"a still image, {size}" if still else f"{clip.duration:.2f} s, {clip.fps:.2f} fps, {size}"),
        ("frames N", f"{clip.n}{repeated}"),
        ("checkpoint", f"{bundle.path}" + (f" ({', '.join(trained)})" if trained else "")),
        ("extractors", extractors),
        ("emotions", ", ".join(bundle.emotions)),
    ]
    cells = "".join(f"<tr><td>{name}</td><td>{html.escape(value)}</td></tr>" for name, value in rows)
    return f"<table class='meta'>{cells}</table>"


def _summary(prediction: ClipPrediction, bundle: ModelBundle, clip: SampledVideo) -> str:
    n = clip.n
    line = f"faces on {int(clip.face_mask.sum())}/{n} frames, audio on {int(clip.audio_mask.sum())}/{n} frames"
    seen = "; ".join(
        f"{f.name} on {int(prediction.features[f.key].mask.sum())}/{n}" for f in bundle.features
    )
    if len(clip.people) > 1:
        line += "; " + ", ".join(f"person {seen.track} on {seen.frames}/{n}" + (" (scored)" if
                                 seen.track == clip.person else "") for seen in clip.people)
    return f"<p class='summary'>{line}</p><p class='note'>frames the model was given, per feature: {seen}</p>"


def _scores(scores: dict[str, float]) -> str:
    """One row per emotion with a bar; the highest score in bold."""
    top = max(scores, key=scores.get)
    scale = max(1.0, *(abs(value) for value in scores.values()))
    rows = []
    for emotion, value in scores.items():
        width = 100 * abs(value) / scale
        rows.append(
            f"<tr{' class=top' if emotion == top else ''}><td>{html.escape(emotion)}</td>"
            f"<td class=v>{value:+.3f}</td><td style='width:24em'>"
            f"<div class='bar{' neg' if value < 0 else ''}' style='width:{width:.1f}%'></div></td></tr>"
        )
    return f"<table class='scores'>{''.join(rows)}</table>"


def _frames(prediction: ClipPrediction, bundle: ModelBundle, clip: SampledVideo, boxes: bool) -> str:
    from ..templates import chosen_sentences

    captions: list[str | None] | None = None
    for feature in bundle.features:
        extractor = prediction.extractors[feature.key]
        if feature.modality == "caption" and hasattr(extractor, "choose"):
            captions = chosen_sentences(extractor.choose([prediction.clips[feature.key]])[0])
    audio_mask = clip.audio_mask
    cards = []
    for i in range(clip.n):
        badges = []
        if not clip.face_mask[i]:
            badges.append("<span class='badge noface'>no face</span>")
        if not audio_mask[i]:
            badges.append("<span class='badge noaudio'>no audio</span>")
        for feature in bundle.features:  # masked for another reason (e.g. no face mesh found in the crop)
            explained = not clip.face_mask[i] if feature.modality != "audio" else not audio_mask[i]
            if not prediction.features[feature.key].mask[i] and not explained:
                badges.append(f"<span class='badge other'>no {html.escape(feature.modality)}</span>")
        if clip.frames is None:
            picture = "<div class='novideo'>no video</div>"
        else:
            box = clip.face_boxes[i] if boxes and clip.face_mask[i] else None
            picture = f"<img class='thumb' alt='frame {i + 1}' src='{_thumbnail(clip.frames[i], box)}'>"
        sentence = ""
        if captions is not None:
            sentence = f"<q class='caption'>{html.escape(captions[i])}</q>" if captions[i] else ""
        missing = " missing" if len(badges) else ""
        cards.append(
            f"<figure class='frame{missing}'>{picture}<figcaption><b>#{i + 1}</b> "
            f"<span class='time'>{clip.times[i]:.2f} s</span> {''.join(badges)}{sentence}</figcaption></figure>"
        )
    note = "" if captions is not None else "<p class='note'>this checkpoint uses no caption features</p>"
    return f"{note}<div class='frames'>{''.join(cards)}</div>"


def _thumbnail(frame: np.ndarray, box: np.ndarray | None) -> str:
    """A JPEG data URI of the frame, THUMB_WIDTH px wide, with the face box drawn."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(frame)
    scale = THUMB_WIDTH / image.width
    image = image.resize((THUMB_WIDTH, max(1, round(image.height * scale))), Image.Resampling.BILINEAR)
    if box is not None:
        ImageDraw.Draw(image).rectangle([float(v) * scale for v in box], outline=(0, 230, 64), width=2)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _traces(prediction: ClipPrediction, bundle: ModelBundle) -> str:
    parts = []
    for feature in bundle.features:
        if feature.modality in TRACED:
            key = feature.key
            names = getattr(prediction.extractors[key], "feature_names", None)
            png = _trace_figure(prediction.clips[key], prediction.features[key], names, feature.name)
            parts.append(f"<img class='traces' alt='fau traces' src='data:image/png;base64,{png}'>")
    if not parts:
        return "<p class='note'>this checkpoint uses no fau or expression features, so there are no traces</p>"
    return "<p class='note'>grey bands: frames where the features are masked (no face, or no face mesh)</p>" + "".join(
        parts
    )


def _panels(names: list[str]) -> list[tuple[str, list[int]]]:
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


def _most_moving(values: np.ndarray, indices: list[int], count: int = MOST_MOVING) -> list[int]:
    """The `count` values whose range over the clip is largest (a panel of 30 lines reads as none)."""
    if len(indices) <= count:
        return indices
    ranges = [np.nan_to_num(np.nanmax(values[:, i]) - np.nanmin(values[:, i])) if np.isfinite(values[:, i]).any()
              else 0.0 for i in indices]
    keep = set(np.argsort(ranges)[::-1][:count].tolist())
    return [index for position, index in enumerate(indices) if position in keep]


def _trace_figure(clip: SampledVideo, features, names: list[str] | None, spec: str) -> str:
    """Base64 PNG: one panel per group of values, lines over frame time, gaps and grey bands where masked."""
    from matplotlib.figure import Figure

    values = features.values.astype(float)
    values[~features.mask] = np.nan
    names = list(names) if names and len(names) == values.shape[1] else [f"{spec} {i}" for i in range(values.shape[1])]
    panels = _panels(names)
    times = clip.times
    half = (times[-1] - times[0]) / max(1, len(times) - 1) / 2 or 0.5
    figure = Figure(figsize=(11, 2.4 * len(panels) + 0.4))
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for axis, (title, indices) in zip(axes, panels, strict=True):
        if len(indices) > MOST_MOVING:
            indices = _most_moving(values, indices)
            title += f": the {MOST_MOVING} that move most"
        for index in indices:
            axis.plot(times, values[:, index], marker="o", markersize=2.5, linewidth=1.2, label=names[index])
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
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode()
