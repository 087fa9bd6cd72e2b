"""Where the CLI keeps the user's tokens: one JSON file in the user's config directory
(platformdirs; ``$XDG_CONFIG_HOME/mp3mesh`` on Linux), readable by the user alone.

A token is kept per server address, so logging in to a second mesh does not log out of
the first. The file is written whole to a new file created with mode 0600 and renamed
over the old one: no moment exists when another user could read it.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

import platformdirs

FILE_MODE = 0o600
DIR_MODE = 0o700


@dataclass(frozen=True)
class Session:
    email: str
    token: str
    expire_time: str  # RFC 3339, as the Login reply gives it


def credentials_path() -> Path:
    return platformdirs.user_config_path("mp3mesh") / "credentials.json"


class CredentialStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or credentials_path()

    def get(self, server: str) -> Session | None:
        entry = self._read().get(server)
        return Session(**entry) if entry else None

    def put(self, server: str, session: Session) -> None:
        sessions = self._read()
        sessions[server] = asdict(session)
        self._write(sessions)

    def forget(self, server: str) -> bool:
        """Drop the server's token; whether there was one."""
        sessions = self._read()
        if sessions.pop(server, None) is None:
            return False
        self._write(sessions)
        return True

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            with self.path.open() as f:
                if stat.S_IMODE(os.fstat(f.fileno()).st_mode) & 0o077:
                    os.chmod(self.path, FILE_MODE)  # someone loosened it: tokens stay private
                data = json.load(f)
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}  # unreadable: as if logged out; the next login rewrites it
        sessions = data.get("sessions") if isinstance(data, dict) else None
        return sessions if isinstance(sessions, dict) else {}

    def _write(self, sessions: dict[str, dict[str, str]]) -> None:
        self.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"sessions": sessions}, f, indent=2)
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
