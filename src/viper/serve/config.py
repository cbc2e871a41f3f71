"""The server's settings: one dataclass, checked before anything loads, saved as config.json in the state folder so
a restarted server can be compared with the one that made the jobs."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import SettingError

LOCAL_HOSTS = ("localhost",)


@dataclass
class ServeConfig:
    """`data`: the only folder a submitted path may name (None: uploads only). `token`: required as `Authorization:
    Bearer TOKEN` on every API request when set; a host other than the loopback refuses to start without one.
    `max_waiting`: jobs that may wait behind the running one (more get 503, so many submissions never pile up
    uploads and memory). `max_upload_mb` and `max_seconds` bound one upload (413) and one video's length (422).
    `keep_uploads_mb`: the uploads kept on disk in all; beyond it the oldest finished jobs' videos are deleted
    (their records and tables stay; a queued or interrupted job keeps its video to run from). `faces`: `all` by
    default, so a clip with several people gets a record per person."""

    host: str = "127.0.0.1"
    port: int = 8000
    checkpoint: Path | None = None
    data: Path | None = None
    token: str | None = None
    state: Path = Path("viper-serve")
    max_waiting: int = 8
    max_upload_mb: float = 512.0
    max_seconds: float = 3600.0
    keep_uploads_mb: float = 2048.0
    faces: str = "all"
    device: str = "cpu"

    def check(self) -> ServeConfig:
        """Self, or a SettingError naming the setting: a non-local host without a token, a --data that is not a
        folder, limits that are not positive."""
        from ..face_choice import check_faces

        check_faces(self.faces)
        if not is_local(self.host) and not self.token:
            raise SettingError("token", f"is required to serve on {self.host}, which other machines can reach: "
                                        "requests must carry `Authorization: Bearer TOKEN` (or bind 127.0.0.1)")
        if self.data is not None and not Path(self.data).is_dir():
            raise SettingError("data", f"must be a folder, and {self.data} is not one")
        for name in ("max_waiting", "max_upload_mb", "max_seconds"):
            if not getattr(self, name) > 0:
                raise SettingError(name, f"must be positive, got {getattr(self, name)}")
        if not self.keep_uploads_mb >= 0:
            raise SettingError("keep_uploads_mb", f"must be 0 or more, got {self.keep_uploads_mb}")
        if not 0 <= self.port < 65536:
            raise SettingError("port", f"must be between 0 and 65535, got {self.port}")
        return self

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def keep_upload_bytes(self) -> int:
        return int(self.keep_uploads_mb * 1024 * 1024)

    def save(self) -> None:
        """config.json in the state folder, without the token (a secret has no place on disk)."""
        from ..atomic import atomic_write_text

        values = {key: str(value) if isinstance(value, Path) else value
                  for key, value in dataclasses.asdict(self).items()}
        values["token"] = "(set)" if self.token else None
        atomic_write_text(Path(self.state) / "config.json", json.dumps(values, indent=2) + "\n")


def is_local(host: str) -> bool:
    """Whether `host` is reachable from this machine only (a loopback address or `localhost`)."""
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

