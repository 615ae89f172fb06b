"""The catalog's rules: valid names, valid base-model folders, who may change what, and the
did-you-mean for unknown names.

Each check raises an engine error whose message says what to do; nothing here touches the
database, so the rules are tested without one.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Optional

from engine.errors import InvalidInput, PermissionDenied
from engine.identity import Caller
from storage.tables import ModelRecord

VISIBILITIES = ("private", "workspace", "public")
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model")


def normalize_name(name: str) -> str:
    return (name or "").strip().lower()


def check_slug(name: str) -> str:
    """The name, lowercased, if it is a valid store name (2..64 letters, digits, dashes)."""
    slug = normalize_name(name)
    if len(slug) < 2 or len(slug) > 64 or not _SLUG.match(slug) or "--" in slug:
        raise InvalidInput(
            f"{name!r} is not a valid model name: use 2 to 64 lowercase letters, digits and "
            "single dashes, starting and ending with a letter or digit (e.g. support-bot).")
    return slug


def normalize_tags(tags: str) -> str:
    """Space separated, lowercase, unique task tags ("Support, FAQ" -> "support faq")."""
    seen: list[str] = []
    for tag in re.split(r"[\s,;]+", (tags or "").lower()):
        tag = re.sub(r"[^0-9a-z_-]", "", tag)
        if tag and tag not in seen:
            seen.append(tag)
    return " ".join(seen)[:512]


def check_hf_folder(path: str | Path) -> Path:
    """The resolved folder if it holds a Hugging Face model: config.json, weights
    (*.safetensors or pytorch_model.bin) and tokenizer files. Names everything missing."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder; give the folder that holds the model's "
                           "config.json, weights and tokenizer files.")
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not (any(folder.glob("*.safetensors")) or (folder / "pytorch_model.bin").is_file()
            or any(folder.glob("pytorch_model-*.bin"))):
        missing.append("weights (*.safetensors or pytorch_model.bin)")
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        missing.append("tokenizer files (tokenizer.json or tokenizer.model)")
    if missing:
        raise InvalidInput(
            f"{folder} is not a Hugging Face model folder: missing {', '.join(missing)}. "
            "Save the model with save_pretrained (model and tokenizer) and try again.")
    return folder.resolve()


def check_visibility(visibility: str) -> str:
    value = (visibility or "").strip().lower()
    if value not in VISIBILITIES:
        raise InvalidInput(f"Visibility must be private, workspace or public, not {visibility!r}.")
    return value


def can_manage(caller: Caller, model: ModelRecord) -> bool:
    """Owners manage their entries; admins manage every entry of their workspace."""
    return model.owner == caller.user or (
        caller.is_admin and bool(model.workspace) and model.workspace == caller.workspace)


def check_manage(caller: Caller, model: ModelRecord, action: str) -> None:
    if not can_manage(caller, model):
        raise PermissionDenied(
            f"Only the owner of '{model.name}' or an admin of its workspace can {action}.")


def check_publish(caller: Caller, model: ModelRecord, visibility: str) -> None:
    check_manage(caller, model, "change its visibility")
    if visibility != "private" and not caller.is_admin:
        raise PermissionDenied(
            f"Only a workspace admin can make '{model.name}' {visibility}; ask an admin to run "
            f"`/store publish {model.name} {visibility}`.")


def is_dm(caller: Caller) -> bool:
    """A direct message with the bot: a "dm:..." channel (see DeploymentRecord), a Slack
    D-channel, or a Discord DM (workspace "discord:dm:<user>")."""
    return (caller.channel.startswith("dm:") or ":dm:" in caller.workspace
            or (caller.platform == "slack" and caller.channel.startswith("D")))


WORKSPACE_DEFAULT = "*"  # the deployment "channel" that holds a workspace's default model
WORKSPACE_DEFAULT_SHOWN = "workspace default"


def check_deploy(caller: Caller, *, default: bool = False) -> None:
    if default:
        if not caller.is_admin and not is_dm(caller):
            raise PermissionDenied("Only a workspace admin can set the workspace's default "
                                   "model; ask one of them.")
        return
    if not caller.channel:
        raise InvalidInput("Deployments belong to a channel; run this command in one.")
    if not caller.is_admin and not is_dm(caller):
        raise PermissionDenied(
            "Only a workspace admin can change the model of a channel; in a direct message with "
            "the bot you can deploy your own default.")


def no_longer_shared(name: str, deployed: Optional[str] = None) -> str:
    """Why a model stopped answering in this workspace: its owner made it private (or
    workspace-only) after it was deployed or named here."""
    if deployed is None:
        return (f"'{name}' is no longer shared with this workspace (its owner made it private), "
                "so it cannot answer here; `/store search` lists the models you can use.")
    where = "the workspace's default" if deployed == WORKSPACE_DEFAULT else "deployed here"
    return (f"'{name}', {where}, is no longer shared with this workspace (its owner made it "
            "private), so it stopped answering; an admin can pick another with "
            f"`/store deploy MODEL{' default' if deployed == WORKSPACE_DEFAULT else ''}`.")


def suggestion(wanted: str, candidates: list[str]) -> str:
    """The did-you-mean sentence for an unknown name, from visible candidate names."""
    close = difflib.get_close_matches(wanted, candidates, n=1, cutoff=0.6)
    if not close:
        close = [c for c in candidates if c.startswith(wanted)][:1]
    if close:
        return f"Did you mean '{close[0]}'?"
    return "`/store search` lists the models you can use."
