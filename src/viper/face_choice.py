"""Whose face a clip's face-based features come from (`--faces main|all|largest`), and the people of its frames.

`largest` is the paper's rule (the largest face of each frame, whoever it is). `main` and `all` follow people with
`tracks.Tracker`, which needs a descriptor per face; a descriptor costs as much as the rest of a frame's face
models, so here they are computed only where they decide something. Faces are first chained over the sampled frames
by their boxes (a face whose box overlaps exactly one face of the previous frame, and that one only it, continues
it); each chain is described at its ends and every `CHECK_EVERY` faces, and where two described faces of a chain
lie farther apart than one person's (`SAME_PERSON`: a cut to someone else in the same place), the faces between
them are described by bisection until the change is found. Every other face takes the descriptor of the nearest
described face of its chain. One person alone in a 32-frame clip costs 2 descriptors, not 32. What this misses: a
different person in the same place for fewer than `CHECK_EVERY` sampled frames, between two checks of one person.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .errors import SettingError

if TYPE_CHECKING:
    from .faces import Face
    from .tracks import Seen, TrackedFace, Tracker

FACE_CHOICES = ("main", "all", "largest")
CHECK_EVERY = 32  # faces of one chain between two descriptors, at most (before a bisection): N=32 costs 2


def check_faces(faces: str) -> str:
    """`faces` as given, or a SettingError naming the choices."""
    if faces not in FACE_CHOICES:
        raise SettingError("faces", f"must be one of {', '.join(FACE_CHOICES)}, not {faces!r}")
    return faces


def track_faces(tracker: Tracker, frames: list[np.ndarray], faces: list[list[Face]], times: list[float],
                device: str = "cpu") -> list[list[TrackedFace]]:
    """Every face of each frame with its person, the tracker updated; descriptors as the module docstring says."""
    from .backbones.face_api_recognition import DIM, SAME_PERSON

    chains = _chains(faces)
    described: dict[tuple[int, int], np.ndarray] = {}
    wanted = {member for chain in chains for member in _checks(chain)}
    while wanted:
        _describe(frames, faces, sorted(wanted), described, device)
        wanted = set()
        for chain in chains:
            checked = [i for i, member in enumerate(chain) if member in described]
            for a, b in zip(checked[:-1], checked[1:], strict=True):
                apart = np.linalg.norm(described[chain[a]] - described[chain[b]]) > SAME_PERSON
                if b - a > 1 and apart:
                    wanted.add(chain[(a + b) // 2])
    descriptors = [np.zeros((len(found), DIM), np.float32) for found in faces]
    for chain in chains:
        checked = [i for i, member in enumerate(chain) if member in described]
        for i, (frame, index) in enumerate(chain):
            nearest = min(checked, key=lambda c: (abs(c - i), c))
            descriptors[frame][index] = described[chain[nearest]]
    return tracker.update(times, faces, descriptors)


def _chains(faces: list[list[Face]]) -> list[list[tuple[int, int]]]:
    """(frame, face index) runs of faces whose boxes continue one another from frame to frame, one-to-one."""
    from .tracks import MIN_OVERLAP, iou

    open_chains: dict[int, list[tuple[int, int]]] = {}  # by face index in the previous frame
    chains = []
    for frame, found in enumerate(faces):
        previous = faces[frame - 1] if frame else []
        overlap = np.array([[iou(face.box, old.box) >= MIN_OVERLAP for old in previous] for face in found],
                           dtype=bool).reshape(len(found), len(previous))
        current = {}
        for index in range(len(found)):
            links = np.flatnonzero(overlap[index])
            if len(links) == 1 and overlap[:, links[0]].sum() == 1 and links[0] in open_chains:
                chain = open_chains[links[0]]
            else:
                chain = []
                chains.append(chain)
            chain.append((frame, index))
            current[index] = chain
        open_chains = current
    return chains


def _checks(chain: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The faces of a chain described first: its ends and every CHECK_EVERY-th face."""
    return [chain[i] for i in sorted({*range(0, len(chain), CHECK_EVERY), len(chain) - 1})]


def _describe(frames: list[np.ndarray], faces: list[list[Face]], members: list[tuple[int, int]],
              described: dict[tuple[int, int], np.ndarray], device: str) -> None:
    """Descriptors of the given faces, in one batched call."""
    from .tracks import describe_faces

    rows = describe_faces([frames[frame] for frame, _ in members], [[faces[frame][index]] for frame, index in members],
                          device)
    described |= {member: row[0] for member, row in zip(members, rows, strict=True)}


def seen(tracked: list[list[TrackedFace]], times: np.ndarray) -> list[Seen]:
    """The people on these frames, in order of their track (of first appearance in the recording)."""
    from .tracks import Seen, area

    people: dict[int, list[tuple[float, TrackedFace]]] = {}
    for time, faces in zip(times, tracked, strict=True):
        for face in faces:
            people.setdefault(face.track, []).append((float(time), face))
    out = []
    for track, faces in sorted(people.items()):
        best = max((face for _, face in faces), key=lambda face: area(face.box))
        out.append(Seen(track=track, frames=len(faces), first=faces[0][0], last=faces[-1][0], box=best.box,
                        area=float(np.mean([area(face.box) for _, face in faces]))))
    return out

