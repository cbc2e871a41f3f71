"""What a submission may bring: an upload streamed to disk under a size limit (413 as soon as it is passed, so a
2 GB upload costs neither memory nor 2 GB of disk), a path that must lie inside --data (no `..`, no link out of
it), and a probe that refuses what `viper predict` could not read with the message the CLI prints."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import VideoReadError

MULTIPART_SLACK = 64 * 1024  # bytes of multipart framing and form fields allowed beyond the file itself


@dataclass
class Refusal(Exception):
    """A request the server will not answer as asked: the HTTP status, the reason shown to the user, and headers
    that tell the client more (Retry-After on a full queue)."""

    status: int
    message: str
    headers: dict[str, str] | None = None


@dataclass
class Upload:
    """A received multipart form: the file's name as sent, where it was written, and the `window` field if any."""

    name: str
    path: Path
    window: str | None = None


def safe_suffix(name: str) -> str:
    """The upload's suffix if it is a plain one (`.mp4`), else none: the stored file is always `upload<suffix>`,
    so a file name never decides where anything is written."""
    suffix = Path(name).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


class MultipartReceiver:
    """Feeds a multipart/form-data body to python-multipart's streaming parser, writing the `file` part under
    `folder` and keeping the small text fields; raises Refusal(413) once `limit` bytes of file are passed."""

    def __init__(self, content_type: str, folder: Path, limit: int) -> None:
        from python_multipart.multipart import MultipartParser, parse_options_header

        kind, options = parse_options_header(content_type)
        if kind != b"multipart/form-data" or b"boundary" not in options:
            raise Refusal(415, "send the video as multipart/form-data (a `file` field), or JSON {\"path\": ...}")
        self.folder, self.limit = folder, limit
        self.fields: dict[str, str] = {}
        self.upload: Upload | None = None
        self._header, self._headers, self._name, self._file, self._text, self._size = b"", {}, None, None, b"", 0
        self.parser = MultipartParser(options[b"boundary"], {
            "on_part_begin": self._begin, "on_header_field": self._field, "on_header_value": self._value,
            "on_headers_finished": self._headers_done, "on_part_data": self._data, "on_part_end": self._end})

    def feed(self, chunk: bytes) -> None:
        self.parser.write(chunk)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def _begin(self) -> None:
        self._headers, self._name, self._text = {}, None, b""

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header = data[start:end].lower()

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._headers[self._header] = self._headers.get(self._header, b"") + data[start:end]

    def _headers_done(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._name == "file" and self.upload is None:
            sent = Path(options.get(b"filename", b"upload").decode("utf-8", "replace").replace("\\", "/")).name
            path = self.folder / f"upload{safe_suffix(sent)}"
            self.upload = Upload(name=sent or "upload", path=path)
            self._file = open(path, "wb")  # noqa: SIM115  (closed at the part's end or by close())

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._name == "file" and self._file is not None:
            self._size += end - start
            if self._size > self.limit:
                raise Refusal(413, f"the upload is larger than this server's limit of {self.limit / 2**20:g} MB "
                                   "(--max-upload-mb)")
            self._file.write(data[start:end])
        elif len(self._text) < 1024:
            self._text += data[start:end]

    def _end(self) -> None:
        if self._name == "file" and self._file is not None:
            self._file.close()
            self._file = None
        elif self._name:
            self.fields[self._name] = self._text.decode("utf-8", "replace")


def data_path(data: Path | None, given: str) -> Path:
    """The file `given` names inside `data` (relative to it, or absolute inside it), or a Refusal: 403 when there is
    no --data or the path leads out of it (`..`, or a link whose target is elsewhere), 404 when it does not exist."""
    if data is None:
        raise Refusal(403, "this server takes no paths: start it with --data DIR to name files under DIR, or upload")
    if not given or "\x00" in given:
        raise Refusal(400, "`path` must name a file under --data")
    if ".." in Path(given).parts:
        raise Refusal(403, f"{given}: `..` is not allowed; name a file under --data")
    root = Path(data).resolve()
    candidate = Path(given) if Path(given).is_absolute() else root / given
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root) or not candidate.absolute().is_relative_to(root):
        raise Refusal(403, f"{given}: outside --data ({data}); only files under it may be named")
    if not resolved.exists():
        raise Refusal(404, f"{given}: file does not exist")
    if not resolved.is_file():
        raise Refusal(400, f"{given}: not a file")
    return resolved


def probe(path: Path, name: str, max_seconds: float) -> None:
    """Refuse (422) a file `viper predict` could not open, with its message naming `name`; a video longer than
    `max_seconds` too. Deeper damage (no decodable frame) is found when the job runs, and fails it with the same
    message as the CLI."""
    from ..images import read_image
    from ..video import open_media, pick_video_stream

    try:
        with open_media(path) as container:
            pick_video_stream(container, path)
            seconds = (container.duration or 0) / 1e6
    except VideoReadError as error:
        if read_image(path) is None:  # a still image is read by its content (Pillow) when FFmpeg could not
            raise Refusal(422, str(error).replace(str(path), name)) from None
        return
    if seconds > max_seconds:
        raise Refusal(422, f"{name}: lasts {seconds:.0f} s, longer than this server's limit of {max_seconds:g} s "
                           "(--max-seconds)")
