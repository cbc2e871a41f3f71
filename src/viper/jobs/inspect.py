"""`viper inspect`: one self-contained HTML page per clip showing what a model (a trained checkpoint, or viper's
general model) saw and what it said.

The page is made from the very objects `viper predict` uses (`prediction.Predictor`: the checkpoint's own
extractors, tokens and model), so it shows the prediction, not a re-enactment of it. Per clip: a header (video,
duration, N, checkpoint, extractors), the record's warnings, the people seen (with --faces main or all: each with
their colour, frames and scores), the predicted score per emotion (per person with all), the N sampled frames with
every person's face box in that person's colour, their time, "no face" / "no audio" marks (and "no <modality>"
where a feature is masked for another reason, e.g. no face mesh) and, when the checkpoint uses captions, the
template sentence chosen for the frame; then the FAU traces (action units or blendshapes and emotion probabilities
over time, masked frames as gaps) when the model reads `fau` or `expression`. A model without them gets a note
instead of traces: the page shows only what the model was given. Each person number and each emotion has one
colour on the whole page. Images are embedded as data URIs (JPEG thumbnails, PNG figure) and the style is inline:
no external resource.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ViperError
from ..filenames import output_paths
from ..progress import Hook, notify
from .inspect_traces import traces_heading, traces_html

if TYPE_CHECKING:

    from ..checkpoint import ModelBundle
    from ..feature_spec import FeatureSpec
    from ..sampled_video import SampledVideo
    from .predict import ClipPrediction

HTML_SUFFIXES = (".html", ".htm")
THUMB_WIDTH = 200
PERSON_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
LARGEST_COLOUR = "#00e640"  # the box of the largest face (--faces largest: nobody followed)
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:90em}"
    "h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}"
    "table.meta td{padding:2px 10px 2px 0;vertical-align:top}table.meta td:first-child{color:#666}"
    ".summary{font-weight:600}.note{color:#666}.warning{color:#a04000}"
    ".scores{border-collapse:collapse}.scores td{padding:2px 8px}.scores td.v{text-align:right;font-family:monospace}"
    ".bar{height:12px;background:#4a7bd0;border-radius:2px}.bar.neg{background:#d05a4a}tr.top td{font-weight:700}"
    ".frames{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:10px}"
    ".frame{margin:0;padding:5px;border:1px solid #ddd;border-radius:4px;background:#fafafa}"
    ".frame.missing{background:#fff4f0;border-color:#e8b4a6}.frame img{width:100%;display:block}"
    ".frame figcaption{font-size:12px;margin-top:4px}.time{color:#555}"
    ".badge{display:inline-block;font-size:11px;padding:0 5px;margin:2px 2px 0 0;border-radius:8px;color:#fff}"
    ".badge.noface{background:#c0392b}.badge.noaudio{background:#8e44ad}.badge.other{background:#7f8c8d}"
    ".caption{display:block;font-style:italic;margin-top:3px}"
    ".swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:5px;vertical-align:-1px}"
    ".people{border-collapse:collapse}.people td,.people th{padding:2px 8px;text-align:left}"
    ".people td.v{text-align:right;font-family:monospace}.people th{font-weight:600;color:#555}"
    ".novideo{height:110px;background:#ddd;display:flex;align-items:center;justify-content:center;color:#666}"
    "img.traces{max-width:100%}"
)


def page_paths(videos: list[Path], out: Path) -> list[Path]:
    """Where each video's page goes: `out` itself for one video and an .html name, else `out/<stem>.html`."""
    return output_paths(videos, Path(out), HTML_SUFFIXES, "page", "--out")


def inspect(
    videos: list[Path | str], checkpoint: Path | str | None, out: Path | str, device: str = "cpu",
    hook: Hook | None = None, face_crop: bool = True, faces: str = "main", runtime: str | None = None,
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Write one page per readable video or image (checkpoint None: the general model; `face_crop=False`: whole
    frames as the face; `faces`: main, all (every person's scores on the page) or largest, whose face is scored;
    `runtime`: onnx or torch runs the networks, default viper.runtime's choice);
    returns the pages and (path, reason) for videos that could not be read."""
    from ..atomic import atomic_write_text
    from .predict import predictions

    videos = [Path(video) for video in videos]
    targets = page_paths(videos, Path(out))
    pages, failures = [], []
    scored = _per_video(predictions(videos, checkpoint, device, face_crop=face_crop, faces=faces,
                                     runtime=runtime), faces)
    for done, ((video, people), target) in enumerate(zip(scored, targets, strict=True), 1):
        if len(videos) > 1:
            notify(hook, "inspect", completed=done, total=len(videos))
        if isinstance(people, str):
            failures.append((str(video), people))
            continue
        try:
            atomic_write_text(target, render_page(people))
        except OSError as error:
            raise ViperError(f"{target}: cannot write the page ({error.strerror or error})") from error
        pages.append(target)
    return pages, failures


def _per_video(scored: Iterable[tuple[Path, ClipPrediction | str]],
               faces: str) -> Iterator[tuple[Path, list[ClipPrediction] | str]]:
    """`predictions` as one item per video: with --faces all a video gives one prediction per person, numbered
    from 1 in each video (person None: nobody seen), so a person 1 or None starts the next video."""
    group: tuple[Path, list[ClipPrediction]] | None = None
    for video, prediction in scored:
        if group is not None and (isinstance(prediction, str) or faces != "all" or prediction.person in (None, 1)):
            yield group
            group = None
        if isinstance(prediction, str):
            yield video, prediction
        elif group is None:
            group = (video, [prediction])
        else:
            group[1].append(prediction)
    if group is not None:
        yield group


def render_page(people: list[ClipPrediction]) -> str:
    """The whole HTML page of one clip: its prediction, or with --faces all one per person (see the module
    docstring for what it shows)."""
    first = people[0]
    bundle = first.bundle
    cropped = [feature.key for feature in bundle.features if feature.face_crop]
    key = (cropped or bundle.keys)[0]
    clip = first.clips[key]
    title = f"viper inspect: {first.video.name}"
    body = [
        f"<h1>{html.escape(title)}</h1>",
        _header(first, bundle, clip),
        _summary(people, bundle, clip),
        _people(people, bundle, clip),
        "<h2>Predicted scores</h2>",
        *(_person_heading(prediction, len(people)) + _scores(prediction.scores) for prediction in people),
        "<h2>Sampled frames</h2>",
        _frames(people, bundle, key, boxes=bool(cropped)),
        f"<h2>{traces_heading(first, bundle)}</h2>",
        *(_person_heading(prediction, len(people)) + traces_html(prediction, bundle) for prediction in people),
    ]
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def person_colour(track: int) -> str:
    """A person's colour, fixed by their number (the palette repeats after 8 people)."""
    return PERSON_COLOURS[(track - 1) % len(PERSON_COLOURS)]


def number(value: float) -> str:
    """A score with 3 decimals, never `-0.000`."""
    text = f"{value:.3f}"
    return "0.000" if text == "-0.000" else text


def _swatch(track: int) -> str:
    return f"<span class='swatch' style='background:{person_colour(track)}'></span>person {track}"


def _person_heading(prediction: ClipPrediction, count: int) -> str:
    """Under --faces all (several predictions on the page), whose part follows; nothing otherwise."""
    if count < 2:
        return ""
    return f"<h3>{_swatch(prediction.person)}</h3>"


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
    duration = clip.duration + (1 / clip.fps if clip.fps else 0.0)  # first frame to the end of the last
    rows = [
        ("video", str(prediction.video)),
        ("duration", f"a still image, {size}" if still else f"{duration:.2f} s, {clip.fps:.2f} fps, {size}"),
        ("frames N", f"{clip.n}{repeated}"),
        ("checkpoint", f"{bundle.path}" + (f" ({', '.join(trained)})" if trained else "")),
        ("extractors", ", ".join(_extractor(feature) for feature in bundle.features)),
        ("emotions", ", ".join(bundle.emotions)),
    ]
    cells = "".join(f"<tr><td>{name}</td><td>{html.escape(value)}</td></tr>" for name, value in rows)
    return f"<table class='meta'>{cells}</table>"


def _extractor(feature: FeatureSpec) -> str:
    """`modality:backend vK (D-d, whole frames)`, leaving out what is not known or not the case."""
    details = [f"{feature.dim}-d"] if feature.dim is not None else []
    details += [] if feature.face_crop else ["whole frames"]
    return f"{feature.name} v{feature.version}" + (f" ({', '.join(details)})" if details else "")


def _summary(people: list[ClipPrediction], bundle: ModelBundle, clip: SampledVideo) -> str:
    """Faces and audio found, the record's warnings (e.g. several people), and on how many frames the model got
    each feature (per person with --faces all)."""
    n = clip.n
    faces = int(clip.face_mask.sum()) if len(people) < 2 else sum(bool(found) for found in clip.tracked)
    line = f"faces on {faces}/{n} frames, audio on {int(clip.sound_mask.sum())}/{n} frames"  # fragments with sound
    given = "; ".join(
        (f"person {prediction.person}: " if len(people) > 1 else "")
        + ", ".join(f"{f.name} on {int(prediction.features[f.key].mask.sum())}/{n}" for f in bundle.features)
        for prediction in people
    )
    warnings = dict.fromkeys(warning for prediction in people for warning in prediction.warnings)
    shown = "".join(f"<p class='warning'>{html.escape(warning)}</p>" for warning in warnings)
    return (f"<p class='summary'>{line}</p>{shown}<p class='note'>frames the model was given, per feature: {given}"
            "</p>")


def _people(people: list[ClipPrediction], bundle: ModelBundle, clip: SampledVideo) -> str:
    """The people seen on the frames (--faces main or all), each in their colour, with their frames, first and last
    time and their scores (with main only the scored person has scores); nothing when nobody is followed."""
    if clip.tracked is None:
        return ""
    if not clip.people:
        return "<h2>People</h2><p class='note'>nobody seen on the sampled frames</p>"
    scores = {prediction.person: prediction.scores for prediction in people}
    head = "".join(f"<th>{html.escape(emotion)}</th>" for emotion in bundle.emotions)
    rows = []
    for seen in clip.people:
        mine = scores.get(seen.track)
        values = ("".join(f"<td class=v>{number(mine[emotion])}</td>" for emotion in bundle.emotions) if mine
                  else f"<td colspan={len(bundle.emotions)} class=note>not scored (--faces all scores each "
                       "person)</td>")
        rows.append(f"<tr><td>{_swatch(seen.track)}</td><td>{seen.frames}/{clip.n}</td>"
                    f"<td>{seen.first:.2f}–{seen.last:.2f} s</td>{values}</tr>")
    scored = "" if len(people) > 1 else (f"; the scores are of person {people[0].person}, the one seen most"
                                         if len(clip.people) > 1 else "")
    return (f"<h2>People</h2><p class='note'>{len(clip.people)} seen: frames with their face, first and last "
            f"time{scored}</p><table class='people'><tr><th>person</th><th>frames</th><th>seen</th>{head}</tr>"
            f"{''.join(rows)}</table>")


def _scores(scores: dict[str, float]) -> str:
    """One row per emotion with a bar; the highest score in bold."""
    top = max(scores, key=scores.get)
    scale = max(1.0, *(abs(value) for value in scores.values()))
    rows = []
    for emotion, value in scores.items():
        width = 100 * abs(value) / scale
        shown = number(value)
        rows.append(
            f"<tr{' class=top' if emotion == top else ''}><td>{html.escape(emotion)}</td>"
            f"<td class=v>{shown}</td><td style='width:24em'>"
            f"<div class='bar{' neg' if shown.startswith('-') else ''}' style='width:{width:.1f}%'></div></td></tr>"
        )
    return f"<table class='scores'>{''.join(rows)}</table>"


def _frames(people: list[ClipPrediction], bundle: ModelBundle, key: str, boxes: bool) -> str:
    """The sampled frames as thumbnails with their marks and, with captions, the sentence chosen for each scored
    person on the frame; every person's box in their colour (the scored people's thick), or with --faces largest
    the largest face's."""
    clip = people[0].clips[key]
    present = [prediction.clips[key].face_mask for prediction in people]  # each scored person's frames
    captions = [_captions(prediction, bundle) for prediction in people]
    scored = {prediction.person for prediction in people}
    audio_mask, sound = clip.audio_mask, clip.sound_mask  # samples there; sound above the floor there
    cards = []
    for i in range(clip.n):
        badges = []
        if not any(mask[i] for mask in present):
            badges.append("<span class='badge noface'>no face</span>")
        if not sound[i]:
            badges.append("<span class='badge noaudio'>no audio</span>")
        for feature in bundle.features:  # masked for another reason (e.g. no face mesh found in the crop)
            masked = [not prediction.features[feature.key].mask[i] for prediction, mask in zip(people, present,
                      strict=True) if (mask[i] if feature.modality != "audio" else audio_mask[i])]
            if any(masked):
                badges.append(f"<span class='badge other'>no {html.escape(feature.modality)}</span>")
        if clip.frames is None:
            picture = "<div class='novideo'>no video</div>"
        else:
            picture = (f"<img class='thumb' alt='frame {i + 1}' "
                       f"src='{_thumbnail(clip.frames[i], _boxes(clip, i, scored) if boxes else [])}'>")
        sentences = "".join(
            f"<q class='caption'>{_swatch(prediction.person) + ': ' if len(people) > 1 else ''}"
            f"{html.escape(chosen[i])}</q>"
            for prediction, chosen in zip(people, captions, strict=True) if chosen is not None and chosen[i]
        )
        missing = " missing" if len(badges) else ""
        cards.append(
            f"<figure class='frame{missing}'>{picture}<figcaption><b>#{i + 1}</b> "
            f"<span class='time'>{clip.times[i]:.2f} s</span> {''.join(badges)}{sentences}</figcaption></figure>"
        )
    note = "" if captions[0] is not None else "<p class='note'>this checkpoint uses no caption features</p>"
    return f"{note}<div class='frames'>{''.join(cards)}</div>"


def _captions(prediction: ClipPrediction, bundle: ModelBundle) -> list[str | None] | None:
    """The template sentence chosen for each frame, or None when the checkpoint uses no caption features."""
    from ..templates import chosen_sentences

    for feature in bundle.features:
        extractor = prediction.extractors[feature.key]
        if feature.modality == "caption" and hasattr(extractor, "choose"):
            return chosen_sentences(extractor.choose([prediction.clips[feature.key]])[0])
    return None


def _boxes(clip: SampledVideo, index: int, scored: set[int | None]) -> list[tuple[np.ndarray, str, int]]:
    """(box, colour, line width) of the faces to draw on one frame."""
    if clip.tracked is None:
        return [(clip.face_boxes[index], LARGEST_COLOUR, 2)] if clip.face_mask[index] else []
    return [(np.asarray(face.box), person_colour(face.track), 3 if face.track in scored else 1)
            for face in clip.tracked[index]]


def _thumbnail(frame: np.ndarray, boxes: list[tuple[np.ndarray, str, int]]) -> str:
    """A JPEG data URI of the frame, THUMB_WIDTH px wide, with the face boxes drawn."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(frame)
    scale = THUMB_WIDTH / image.width
    image = image.resize((THUMB_WIDTH, max(1, round(image.height * scale))), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    for box, colour, width in boxes:
        draw.rectangle([float(v) * scale for v in box], outline=colour, width=width)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
