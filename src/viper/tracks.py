"""Which person: faces followed across the sampled frames of a clip and across the windows of a long recording.

The largest face of each frame is not one person: in a clip with several people it changes from frame to frame, and
scores over those frames describe nobody. Here every detected face gets a descriptor (face-api.js's recognition net,
dlib's ResNet: 128 values, one person's faces within 0.6 of each other) and a track id. A `Tracker` keeps one
entry per person seen so far (a running mean descriptor, the last box), so its memory grows with the number of
people, never with the length of the recording, and one tracker lives across the windows of a recording.

Each frame's faces are assigned to the known people by the Hungarian method, so two faces of one frame are never one
person. A face joins a person when its descriptor lies within `threshold` (0.5) of that person's mean, or within
`continuing_threshold` (dlib's 0.6) when its box also overlaps that person's box on the previous sampled frame;
among the allowed pairings the closest descriptors win, overlap breaking near ties (identical twins). A face that
joins no one starts a new person. Track ids are 1, 2, ... in order of first appearance: the person numbers a user
sees.

Why 0.5 and not dlib's 0.6 against the gallery: a new face is compared with everyone seen so far, so false matches
add up with the number of people, and a mean that has absorbed a stranger draws in more. On the London set (102
people, neutral then smiling, `benchmarks/tracks.py`) 0.6 left 31 tracks for 102 people, 0.5 left 94 (12 people
in 3 shared tracks), 101 of 102 smiles on their own person's track; one person's faces lie much closer to their own
mean than to each other (actor 05's 180 faces over 60 takes, grimaces included: at most 0.44 from the mean, up to
0.63 from each other; a moving head in a 20 s Pexels clip: 0.47 and 0.73): one track each at 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .assignment import min_cost_assignment
from .backbones.face_api_recognition import DIM, INPUT_SIZE, SAME_PERSON
from .faces import FACE_API_CROP, Face, crop_square

THRESHOLD = 0.5  # a face against a person's mean descriptor (see above)
MIN_OVERLAP = 0.3  # IoU with the person's box on the previous sampled frame that allows `continuing_threshold`
OVERLAP_WEIGHT = 0.1  # cost of no overlap, in descriptor distance: breaks ties between equally close people
FORBIDDEN = 1e6


@dataclass(frozen=True)
class TrackedFace:
    """One detected face and the person it was assigned to; `frame` indexes the frames of its `update` call."""

    frame: int
    box: tuple[float, float, float, float]
    eyes: np.ndarray | None
    descriptor: np.ndarray
    track: int


@dataclass(frozen=True)
class Seen:
    """One person on the frames of one clip (or window): their track, frames with their face here, first and last
    time (s), their largest box here (the best view), and the mean area of their boxes here."""

    track: int
    frames: int
    first: float
    last: float
    box: tuple[float, float, float, float]
    area: float


@dataclass(frozen=True)
class Person(Seen):
    """One person as seen so far, over every frame the tracker has followed: what `Seen` says, and their mean
    descriptor."""

    descriptor: np.ndarray


@dataclass
class Track:
    """A person's running state: a few values whatever the length of the recording."""

    track: int
    first: float
    last: float = 0.0
    mean: np.ndarray = field(default_factory=lambda: np.zeros(DIM))
    last_box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    last_frame: int = -1
    frames: int = 0
    area_sum: float = 0.0
    best_box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    best_area: float = -1.0

    def add(self, box: tuple[float, float, float, float], descriptor: np.ndarray, time: float, frame: int) -> None:
        self.frames += 1
        self.mean += (descriptor - self.mean) / self.frames
        self.last, self.last_box, self.last_frame = time, box, frame
        size = area(box)
        self.area_sum += size
        if size > self.best_area:
            self.best_box, self.best_area = box, size

    def person(self) -> Person:
        return Person(track=self.track, frames=self.frames, first=self.first, last=self.last, box=self.best_box,
                      area=self.area_sum / self.frames, descriptor=self.mean.astype(np.float32))


class Tracker:
    """The people of one recording, fed frame by frame (or window by window) with their faces and descriptors."""

    def __init__(self, threshold: float = THRESHOLD, continuing_threshold: float = SAME_PERSON,
                 min_overlap: float = MIN_OVERLAP) -> None:
        self.threshold, self.continuing_threshold, self.min_overlap = threshold, continuing_threshold, min_overlap
        self.tracks: list[Track] = []
        self.frames = 0  # sampled frames seen, over all updates: "the previous frame" spans windows

    def update(self, frame_times: list[float], faces_per_frame: list[list[Face]],
               descriptors_per_frame: list[np.ndarray]) -> list[list[TrackedFace]]:
        """Each frame's faces, in their order, with their track ids; frames in time order, after the last update's."""
        tracked = []
        for index, (time, faces, descriptors) in enumerate(
                zip(frame_times, faces_per_frame, descriptors_per_frame, strict=True)):
            descriptors = np.asarray(descriptors, np.float64).reshape(len(faces), DIM)
            matches = self.assign(faces, descriptors)
            for i, face in enumerate(faces):
                if matches[i] is None:
                    matches[i] = Track(track=len(self.tracks) + 1, first=time)
                    self.tracks.append(matches[i])
                matches[i].add(face.box, descriptors[i], time, self.frames)
            tracked.append([TrackedFace(frame=index, box=face.box, eyes=face.eyes,
                                        descriptor=descriptors[i].astype(np.float32), track=matches[i].track)
                            for i, face in enumerate(faces)])
            self.frames += 1
        return tracked

    def assign(self, faces: list[Face], descriptors: np.ndarray) -> list[Track | None]:
        """The known person each face of one frame joins, or None; no person is given two faces."""
        if not faces or not self.tracks:
            return [None] * len(faces)
        distance = pairwise(descriptors, np.stack([track.mean for track in self.tracks]))
        overlap = np.array([[iou(face.box, track.last_box) if track.last_frame == self.frames - 1 else 0.0
                             for track in self.tracks] for face in faces])
        allowed = (distance < self.threshold) | ((distance < self.continuing_threshold) & (overlap >= self.min_overlap))
        cost = np.where(allowed, distance + OVERLAP_WEIGHT * (1 - overlap), FORBIDDEN)
        matches: list[Track | None] = [None] * len(faces)
        for row, col in min_cost_assignment(cost):
            if allowed[row, col]:
                matches[row] = self.tracks[col]
        return matches

    def persons(self) -> list[Person]:
        """Everyone seen so far, in order of first appearance."""
        return [track.person() for track in self.tracks]


def main_person(persons: list[Person]) -> Person | None:
    """The person seen on the most frames (ties: the larger mean box, then the earlier), or None."""
    return max(persons, key=lambda person: (person.frames, person.area, -person.track), default=None)


def describe_faces(frames: list[np.ndarray], faces_per_frame: list[list[Face]],
                   device: str = "cpu") -> list[np.ndarray]:
    """The descriptors (k, 128) of each frame's faces, all frames in one batched call, each face cut as face-api.js
    cuts it for this net (`faces.FACE_API_CROP`)."""
    from .backbones.face_api_recognition import describe

    crops = [crop_square(frame, FACE_API_CROP.box(face.box), 0.0, INPUT_SIZE)
             for frame, faces in zip(frames, faces_per_frame, strict=True) for face in faces]
    descriptors = describe(crops, device)
    bounds = np.cumsum([0] + [len(faces) for faces in faces_per_frame])
    return [descriptors[start:end] for start, end in zip(bounds[:-1], bounds[1:], strict=True)]


def pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(a), len(b))."""
    return np.linalg.norm(a[:, None] - b[None], axis=-1)


def area(box) -> float:
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


def iou(a, b) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes (0 when they do not meet)."""
    inner = area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    return inner / (area(a) + area(b) - inner) if inner > 0 else 0.0
