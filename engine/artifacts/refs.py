"""How an artifact is named: `artifact:<sha256 of a folder's manifest>[/<file in it>]`.

A version's `path`, a job's checkpoint and a tune result's adapter and plot hold such a
name instead of a folder on one host's disk; anything else (an older store's absolute
path, `bundled:...`) is a location of its own and is used as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "artifact:"
_REF = re.compile(r"^artifact:([0-9a-f]{64})(?:/(.+))?$")


@dataclass(frozen=True)
class Ref:
    tree: str  # the manifest's SHA-256
    path: str = ""  # a file inside the tree, or "" for the folder itself

    def __str__(self) -> str:
        return f"{PREFIX}{self.tree}" + (f"/{self.path}" if self.path else "")

    def file(self, relative: str) -> "Ref":
        return Ref(self.tree, relative)


def is_ref(location: str | None) -> bool:
    return bool(location) and str(location).startswith(PREFIX)


def parse(location: str) -> Ref:
    match = _REF.match(str(location))
    if match is None:
        raise ValueError(f"not an artifact reference: {location!r}")
    return Ref(match.group(1), match.group(2) or "")
