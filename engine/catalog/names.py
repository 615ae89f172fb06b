"""Model names across workspaces: a name is unique within its owner workspace, and another
workspace's model is written `WORKSPACE/NAME` where the bare name is ambiguous.

A workspace is written by its handle: the platform's own id without the platform prefix,
lowercased ("slack:T0123ABC" -> "t0123abc", "discord:4567" -> "4567", a Discord DM
"discord:dm:42" -> "dm-42", the console's "local" -> "local"); the store's own entries (the
bundled base, workspace "") are "store". Slack team ids start with a letter and Discord guild
ids are digits, so handles never collide. The long forms ("slack:T0123ABC", "slack-t0123abc")
are accepted too.

A bare name means, in this order: the caller's own workspace's entry, the store's own entry,
or the one other workspace's entry the caller can see. Only when several other workspaces
have a visible entry of that name must the caller qualify it. Nothing here touches the
database; the service hands in the visible entries of one name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from engine.catalog.rules import normalize_name
from engine.errors import InvalidInput
from storage.tables import ModelRecord

STORE_HANDLE = "store"  # how the store's own workspace ("") is written
PLATFORMS = ("slack", "discord")  # prefixes a handle leaves out
_UNSAFE = re.compile(r"[^a-z0-9-]+")


def handle(workspace: str) -> str:
    """The short, stable form of a workspace in qualified names and folder names."""
    if not workspace:
        return STORE_HANDLE
    platform, sep, rest = workspace.partition(":")
    if sep and platform in PLATFORMS and rest:
        workspace = rest
    return _UNSAFE.sub("-", workspace.lower()).strip("-") or STORE_HANDLE


def _long_form(workspace: str) -> str:
    return _UNSAFE.sub("-", workspace.lower()).strip("-")


def qualifier_means(qualifier: str, workspace: str) -> bool:
    """True when `qualifier` (as typed before the slash) names `workspace`."""
    typed = _UNSAFE.sub("-", qualifier.strip().lower()).strip("-")
    return bool(typed) and typed in (handle(workspace), _long_form(workspace) or STORE_HANDLE)


@dataclass(frozen=True)
class Wanted:
    """A name as typed: `name`, or `qualifier/name`."""

    name: str
    qualifier: str | None = None

    @property
    def text(self) -> str:
        return self.name if self.qualifier is None else f"{self.qualifier}/{self.name}"


def parse(typed: str) -> Wanted:
    text = normalize_name(typed)
    if not text:
        raise InvalidInput("Name a model, e.g. `/store info smollm2-135m-instruct`; "
                           "`/store search` lists them.")
    qualifier, slash, name = text.partition("/")
    if not slash:
        return Wanted(text)
    if not qualifier.strip() or not name.strip() or "/" in name:
        raise InvalidInput(f"{typed.strip()!r} is not a model name: write NAME, or "
                           "WORKSPACE/NAME for another workspace's model (e.g. t0123abc/support-bot).")
    return Wanted(name.strip(), qualifier.strip())


def qualified(model: ModelRecord) -> str:
    return f"{handle(model.workspace)}/{model.name}"


def pick(workspace: str, wanted: Wanted, visible: Sequence[ModelRecord]) -> ModelRecord | None:
    """The entry `wanted` means for a caller in `workspace`, among the visible entries of
    that name; None when there is none. InvalidInput when the bare name is ambiguous."""
    if wanted.qualifier is not None:
        return next((m for m in visible if qualifier_means(wanted.qualifier, m.workspace)), None)
    for scope in (workspace, ""):
        found = next((m for m in visible if m.workspace == scope), None)
        if found is not None:
            return found
    if len(visible) <= 1:
        return visible[0] if visible else None
    options = ", ".join(sorted(qualified(m) for m in visible))
    raise InvalidInput(f"Several workspaces share a model called '{wanted.name}'; name the one "
                       f"you mean: {options}.")


def shown(model: ModelRecord, workspace: str, visible: Iterable[ModelRecord]) -> str:
    """What a caller in `workspace` types for `model`: its bare name when that means it,
    else WORKSPACE/NAME. `visible`: the caller's visible entries of the same name."""
    same = [m for m in visible if m.name == model.name]
    if model.id not in {m.id for m in same}:
        same.append(model)
    try:
        chosen = pick(workspace, Wanted(model.name), same)
    except InvalidInput:
        chosen = None
    return model.name if chosen is not None and chosen.id == model.id else qualified(model)


def folder(model: ModelRecord) -> str:
    """The model's folder under the store's adapters folder: WORKSPACE/NAME, so two
    workspaces' entries of one name never share files."""
    return f"{handle(model.workspace)}/{model.name}"
