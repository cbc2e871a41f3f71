"""Names from user data that become file names: video ids (`clips/<id>.json`, `features/<key>/videos/<id>.npz`),
store keys, page and report names. A name that passes `name_problem` is one file name, so joined under a folder it
stays in that folder: no input (manifest, dataset layout, folder of videos, challenge features) can make viper
write outside the folder it was given."""

from __future__ import annotations

import hashlib
import unicodedata
from collections import Counter
from pathlib import Path

from .errors import ViperError

MAX_NAME_BYTES = 200  # file systems allow 255 bytes; the rest is room for `.npz` and atomic writes' temp names
CONTROL = ("Cc", "Cs", "Zl", "Zp")  # control characters, undecodable bytes (surrogates), line/paragraph separators
WINDOWS_FORBIDDEN = '<>:"|?*'  # `a:b` names a stream of file `a`; the rest are wildcards and redirections
WINDOWS_DEVICES = frozenset({"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
                            | {f"{port}{n}" for port in ("COM", "LPT") for n in "0123456789\u00b9\u00b2\u00b3"})
INVISIBLE = "Cf"  # format characters: zero-width space and joiners, BOM, direction marks, soft hyphen


def name_problem(name: str) -> str | None:
    """Why `name` cannot be one file name inside a folder, or None when it can."""
    if not name:
        return "is empty"
    if name in (".", ".."):
        return f"is {name!r}, which names a folder"
    if "/" in name or "\\" in name:
        return "holds a path separator (/ or \\)"
    if any(unicodedata.category(char) in CONTROL for char in name):
        return "holds a control character, a line break or undecodable bytes"
    if any(char in WINDOWS_FORBIDDEN for char in name):
        return 'holds a character Windows forbids in file names (< > : " | ? *)'
    if name[-1] in ". ":
        return "ends with a dot or a space, which Windows drops from file names"
    if windows_device(name):
        return f"names the Windows device {windows_device(name)} (reserved in any case, with any extension)"
    size = len(name.encode())
    if size > MAX_NAME_BYTES:
        return f"is {size} bytes long (at most {MAX_NAME_BYTES})"
    return None


def printable(text: str) -> str:
    """`text` for a terminal: control characters but line breaks and tabs, undecodable bytes and line separators
    escaped (`\\x1b`), so a file name in a message cannot recolour, move or clear the user's terminal."""
    return "".join(char if char in "\n\t" or unicodedata.category(char) not in CONTROL else ascii(char)[1:-1]
                   for char in text)


def windows_device(name: str) -> str | None:
    """The device Windows opens for `name` (`nul.txt`, `Com1 .tar.gz`: any case, any extension), None for a file."""
    device = name.partition(".")[0].rstrip(" ").upper()
    return device if device in WINDOWS_DEVICES else None


def safe_name(text: str) -> str:
    """`text` made into a name that passes `name_problem`: separators become `__`, control characters, characters
    Windows forbids and trailing dots or spaces `_`, a Windows device name gets a leading `_` (`_CON.txt`), and a
    name too long keeps its start and gets a hash of the whole (so two long names stay apart)."""
    name = text.replace("/", "__").replace("\\", "__")
    name = "".join("_" if unicodedata.category(char) in CONTROL or char in WINDOWS_FORBIDDEN else char
                   for char in name)
    kept = name.rstrip(". ")
    name = kept + "_" * (len(name) - len(kept)) or "_"  # also `.` and `..`, which name folders
    if windows_device(name):
        name = f"_{name}"
    if len(name.encode()) > MAX_NAME_BYTES:
        name = name.encode()[: MAX_NAME_BYTES - 13].decode(errors="ignore") + "-" + _digest(text, 12)
    return name


def id_key(name: str) -> str:
    """What two names share when they are one id: they differ only in case (one file on macOS and Windows), in
    Unicode normalisation (`é` as one character or as `e` + accent: one file on macOS) or in invisible characters
    (a zero-width space, a joiner, a BOM pasted in), so that no one can tell them apart."""
    visible = "".join(char for char in name if unicodedata.category(char) != INVISIBLE)
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", visible).casefold())


def unique_names(names: list[str], sources: list[str]) -> list[str]:
    """`names`, where several sources share a name each getting a hash of its source (e.g. the file's relative
    path) appended: stable whatever the order of the sources, and never two clips under one id. Names with one
    `id_key` count as one."""
    counts = Counter(map(id_key, names))
    return [name if counts[id_key(name)] == 1 else safe_name(f"{name}-{_digest(source, 8)}")
            for name, source in zip(names, sources, strict=True)]


def case_clashes(names: list[str]) -> list[str]:
    """Groups of distinct names with one `id_key`, each as text: `Clip / clip` where they differ in case only, else
    escaped so the reader sees the difference (`'Cafe\\u0301' / 'Caf\\xe9'`)."""
    groups: dict[str, set[str]] = {}
    for name in names:
        groups.setdefault(id_key(name), set()).add(name)
    clashes = [sorted(group) for group in groups.values() if len(group) > 1]
    return [" / ".join(group) if len({name.casefold() for name in group}) == 1
            else " / ".join(map(ascii, group)) + " (the same but for Unicode normalisation or invisible characters)"
            for group in clashes]


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode(errors="surrogatepass")).hexdigest()[:length]


def output_paths(videos: list[Path], out: Path, suffixes: tuple[str, ...], kind: str, option: str) -> list[Path]:
    """Where each video's output goes (pages, plots): `out` itself for one video and a name with one of `suffixes`,
    else `out/<stem><suffixes[0]>`, the stem made a safe file name, so every output is inside `out`. A name with
    another suffix (`trace.jpg`) is refused unless it is an existing folder: it would silently become one."""
    if out.suffix and out.suffix.lower() not in suffixes and not out.exists():  # an existing file: said below
        raise ViperError(f"{option} {out}: a {kind} is written as {', '.join(suffixes)}; name such a file, or a folder "
                         "(an existing one, or a name without a suffix)")
    if out.suffix.lower() in suffixes and not out.is_dir():
        if len(videos) != 1:
            raise ViperError(f"{out}: {len(videos)} videos need {option} to be a folder (one {kind} per video)")
        return [out]
    if out.exists() and not out.is_dir():
        raise ViperError(f"{out}: exists and is not a folder; give a folder, or a {'/'.join(suffixes)} name for one "
                         "video")
    paths, taken = [], set()
    for video in videos:
        stem, number = safe_name(Path(video).stem), 1
        name = f"{stem}{suffixes[0]}"
        while name in taken:  # two videos with one name in different folders
            number += 1
            name = f"{stem}-{number}{suffixes[0]}"
        taken.add(name)
        paths.append(out / name)
    return paths
