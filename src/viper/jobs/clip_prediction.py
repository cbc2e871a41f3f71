"""What one prediction is: the clip as the model saw it, its scores, their coverage, and whose face they are of;
as the record `viper predict` prints and the per-frame table `--per-frame` writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..checkpoint import ModelBundle
    from ..extractors.base import Extractor, Features
    from ..sampled_video import SampledVideo
    from ..tracks import Seen
    from ..windows import Window


@dataclass
class Coverage:
    """How much of a clip the scores rest on: of its N sampled frames, those with a face (the chosen person's, with
    --faces main or all) and with audio; and how many people were seen (None with --faces largest: not followed)."""

    frames: int
    face: int
    audio: int
    people: int | None = None

    def warnings(self, face_based: bool, audio_based: bool) -> list[str]:
        """Plain sentences for what the model could not see (only for the evidence the checkpoint reads)."""
        found = []
        if face_based and not self.face:
            found.append("no face found: " + ("scores come from audio only" if audio_based and self.audio
                                              else "the face-based features are all missing"))
        elif face_based and self.face < self.frames / 2:
            found.append(f"face on {self.face}/{self.frames} frames")
        if audio_based and not self.audio:
            found.append("no audio: " + ("scores come from the face only" if face_based and self.face
                                         else "the audio features are all missing"))
        elif audio_based and self.audio < self.frames / 2:
            found.append(f"audio on {self.audio}/{self.frames} frames")
        if (not face_based or not self.face) and (not audio_based or not self.audio):
            found.append("nothing the model reads was found: the scores carry no evidence about this video")
        return found

    def as_dict(self) -> dict[str, int]:
        counts = {"frames": self.frames, "face": self.face, "audio": self.audio}
        return counts if self.people is None else counts | {"people": self.people}


def people_warning(clip: SampledVideo) -> str | None:
    """With several people on a clip's frames: whose face the scores are of, and on how many frames each was seen
    (and those where only others are); None with one person or none."""
    if len(clip.people) < 2:
        return None
    n, mine = clip.n, int(clip.face_mask.sum())
    others = [f"person {seen.track} on {seen.frames}/{n}" for seen in clip.people if seen.track != clip.person]
    only_others = sum(bool(faces) and all(face.track != clip.person for face in faces) for faces in clip.tracked)
    text = (f"{len(clip.people)} people seen: scores are of person {clip.person}, the one seen most (on {mine}/{n} "
            f"frames); {', '.join(others)}")
    return text + (f"; only others visible on {only_others}/{n} frames" if only_others else "")


def largest_warning(clip: SampledVideo, device: str = "cpu") -> str | None:
    """With --faces largest: when the largest faces are of several people, that the scores mix them (and on how
    many frames each is the largest); None when they are of one person or none."""
    people = largest_people(clip, device)
    if len(people) < 2:
        return None
    counts = ", ".join(f"person {seen.track} on {seen.frames}/{clip.n}" for seen in people)
    return (f"the largest face is of {len(people)} people over the frames ({counts}): scores mix them; "
            "use --faces main")


def largest_people(clip: SampledVideo, device: str = "cpu") -> list[Seen]:
    """The people behind a clip's largest face of each frame (`--faces largest`), followed as `track_faces` follows
    everyone (descriptors where the chain of boxes breaks), with a tracker of their own: the clip is not changed."""
    import numpy as np

    from ..face_choice import seen, track_faces
    from ..faces import Face
    from ..tracks import Tracker

    if clip.frames is None:
        return []
    faces = [[Face(box=tuple(float(v) for v in box), eyes=None if np.isnan(eyes).any() else eyes)] if found else []
             for box, eyes, found in zip(clip.face_boxes, clip.face_eyes, clip.face_mask, strict=True)]
    tracked = track_faces(Tracker(), clip.frames, faces, [float(t) for t in clip.times], device)
    return seen(tracked, clip.times)

@dataclass
class ClipPrediction:
    """One video as the model saw it: the decoded clips, every feature it read, its scores and their coverage."""

    video: Path
    clips: dict[str, SampledVideo]  # by store key: the decoded clip its features came from (one per face-crop setting)
    features: dict[str, Features]  # by store key, for every key of the checkpoint
    extractors: dict[str, Extractor]  # by store key: the loaded extractor that made those features
    scores: dict[str, float]  # emotion -> score, in the checkpoint's emotion order
    coverage: Coverage
    warnings: list[str]
    bundle: ModelBundle  # the model that made the scores
    window: Window | None = None  # the span of a long recording these scores are for (`--window`); None: whole clip
    person: int | None = None  # whose face the scores are of (--faces main or all); None: the largest of each frame
    seen: Seen | None = None  # that person on these frames; None where they are not on them

    def frame_table(self):
        """One row per sampled frame (pandas): video, media, frame, time (s), `repeated` (the same decoded frame as
        an earlier row: a clip with fewer frames than N, or a still image), face found and its box (frame pixels),
        with --faces main or all `person` (whose scores) and `track` (whose face box; 0 where none), audio present,
        every named per-frame value as `<modality>.<name>` (blendshapes, AUs, expression probabilities; NaN where
        masked), then the clip's scores as `score.<emotion>`."""
        import numpy as np
        import pandas as pd

        clip = next(iter(self.clips.values()))  # the clip of the model's first features (the face settings it used)
        box = np.asarray(clip.face_boxes, dtype=float)
        repeated = np.ones(clip.n, bool)
        repeated[np.unique(clip.frame_times, return_index=True)[1]] = False  # each decoded frame's first row
        table = {"video": str(self.video), "media": clip.media} | self._span() | {"frame": np.arange(clip.n),
                 "time": clip.times, "repeated": repeated, "face": np.asarray(clip.face_mask, bool),
                 "face_x0": box[:, 0], "face_y0": box[:, 1], "face_x1": box[:, 2], "face_y1": box[:, 3]}
        if clip.tracked is not None:
            table |= {"person": self.person or 0, "track": np.where(clip.face_mask, self.person or 0, 0)}
        table["audio"] = clip.sound_mask  # the fragment holds sound, as coverage counts it
        for key, features in self.features.items():
            names = getattr(self.extractors[key], "feature_names", None)
            if not names:  # embeddings (face image, caption, voice): hundreds of unnamed numbers, not a table
                continue
            values = np.where(features.mask[:, None], features.values, np.nan)
            for index, name in enumerate(names):
                table[f"{self.extractors[key].modality}.{name}"] = values[:, index]
        table |= {f"score.{emotion}": value for emotion, value in self.scores.items()}
        return pd.DataFrame(table)

    def record(self) -> dict[str, Any]:
        """What `viper predict` prints: video, media (`image` for a still picture, else `video`), (with a window:
        its index, start and end in seconds,) (with --faces main or all: person, and their frames, first and last
        time, largest box here,) scores, coverage and warnings."""
        return {"video": str(self.video), "media": next(iter(self.clips.values())).media, **self._span(),
                **self._person(), "scores": self.scores, "coverage": self.coverage.as_dict(),
                "warnings": self.warnings}

    def _span(self) -> dict[str, Any]:
        if self.window is None:
            return {}
        return {"window": self.window.index, "start": round(self.window.start, 3), "end": round(self.window.end, 3)}

    def _person(self) -> dict[str, Any]:
        if self.person is None:
            return {}
        seen = self.seen
        return {"person": self.person, "person_frames": seen.frames if seen else 0,
                "person_first": round(seen.first, 3) if seen else None,
                "person_last": round(seen.last, 3) if seen else None,
                "person_box": [round(float(value), 1) for value in seen.box] if seen else None}
