"""Secrets named by reference in the directory, resolved where the connector runs.

A target names its secret (`secret_ref`); the value lives in a directory of files, one per
secret, as a Kubernetes Secret is mounted, or in an environment variable `CWN_SECRET_<REF>`
(upper case, `.` and `-` as `_`). A file may hold several values, one per line: the first is
current and the others are still accepted during a rotation (webhooks sign with all of them).
Values never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_ENV_PREFIX = "CWN_SECRET_"


class SecretMissing(LookupError):
    """A target names a secret that is not there."""


@dataclass(frozen=True, slots=True)
class Secret:
    """One secret's values, newest first."""

    ref: str
    values: tuple[str, ...]

    @property
    def current(self) -> str:
        return self.values[0]

    def __repr__(self) -> str:
        return f"Secret({self.ref!r}, <{len(self.values)} value(s) hidden>)"

    __str__ = __repr__


class SecretStore:
    """Looks secrets up by reference, in `directory` first, then in the environment."""

    def __init__(self, directory: Path | None = None, environ: dict[str, str] | None = None) -> None:
        self._directory = directory
        self._environ = os.environ if environ is None else environ

    def get(self, ref: str) -> Secret:
        values: list[str] = []
        if self._directory is not None:
            path = self._directory / ref
            if path.is_file():
                values = path.read_text().split()
        if not values:
            values = self._environ.get(env_name(ref), "").split()
        if not values:
            where = f"{self._directory}/{ref} or " if self._directory else ""
            raise SecretMissing(f"secret {ref!r} not found (looked in {where}${env_name(ref)})")
        return Secret(ref, tuple(values))


def env_name(ref: str) -> str:
    return _ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", ref).upper()
