"""The fine-tune modal: the view `/store tune` opens, and its submission as command text.

The form holds what `tune` takes (name, base, and every option of TUNE_OPTIONS) and a
file_input for the Q&A file; a submission becomes the same `tune NAME key=value ...` text
the other platforms send, so the command core validates it once for everyone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.training.config import TUNE_OPTIONS

CALLBACK_ID = "store_tune"
FILE_TYPES = ["csv", "tsv", "jsonl", "json", "txt"]
NUMBERS = tuple(o for o in TUNE_OPTIONS if o.type in ("int", "float"))
CHOICES = tuple(o for o in TUNE_OPTIONS if o.type == "choice")


@dataclass(frozen=True)
class TuneForm:
    """What a submitted modal asked for."""

    text: str  # "tune acme base=tiny epochs=1"
    files: tuple[dict[str, Any], ...]
    channel: str
    thread_ts: str


def _input(block_id: str, label: str, element: dict[str, Any], *, optional: bool,
           hint: str = "") -> dict[str, Any]:
    block = {"type": "input", "block_id": block_id, "optional": optional,
             "label": {"type": "plain_text", "text": label}, "element": element}
    if hint:
        block["hint"] = {"type": "plain_text", "text": hint}
    return block


def tune_view(*, channel: str, thread_ts: str = "", name: str = "",
              options: dict[str, str] | None = None, default_base: str = "") -> dict[str, Any]:
    """The modal, prefilled from `/store tune NAME key=value` when those were typed."""
    options = options or {}
    text_input = {"type": "plain_text_input", "action_id": "value"}
    blocks = [
        _input("name", "Model name", {**text_input, **({"initial_value": name} if name else {}),
                                      "placeholder": {"type": "plain_text",
                                                      "text": "acme-support"}},
               optional=False, hint="Lowercase letters, digits and dashes; new or yours."),
        _input("base", "Base model", {**text_input, **(
            {"initial_value": options["base"]} if options.get("base") else {}),
            "placeholder": {"type": "plain_text", "text": default_base or "default base"}},
            optional=True),
    ]
    for option in NUMBERS:
        element: dict[str, Any] = {"type": "number_input", "action_id": "value",
                                   "is_decimal_allowed": option.type == "float",
                                   "placeholder": {"type": "plain_text", "text": option.example}}
        if options.get(option.name):
            element["initial_value"] = options[option.name]
        blocks.append(_input(option.name, option.label, element, optional=True))
    for option in CHOICES:
        choices = [{"text": {"type": "plain_text", "text": c}, "value": c} for c in option.choices]
        element = {"type": "static_select", "action_id": "value", "options": choices}
        if options.get(option.name) in option.choices:
            element["initial_option"] = choices[option.choices.index(options[option.name])]
        blocks.append(_input(option.name, option.label, element, optional=True))
    blocks.append(_input("file", "Q&A file", {"type": "file_input", "action_id": "value",
                                              "filetypes": FILE_TYPES, "max_files": 1},
                         optional=False,
                         hint="CSV/TSV with question and answer columns, JSONL or JSON."))
    return {
        "type": "modal", "callback_id": CALLBACK_ID,
        "title": {"type": "plain_text", "text": "Fine-tune a model"},
        "submit": {"type": "plain_text", "text": "Start"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps({"channel": channel, "thread_ts": thread_ts}),
        "blocks": blocks,
    }


def _value(values: dict[str, Any], block_id: str) -> Any:
    return (values.get(block_id) or {}).get("value") or {}


def form_errors(view: dict[str, Any]) -> dict[str, str]:
    """Problems Slack can show next to the fields (response_action=errors)."""
    values = view.get("state", {}).get("values", {})
    errors: dict[str, str] = {}
    name = (_value(values, "name").get("value") or "").strip()
    if not name:
        errors["name"] = "Give the model a name."
    elif " " in name:
        errors["name"] = "Use one word: letters, digits and dashes."
    for option in NUMBERS:
        raw = _value(values, option.name).get("value")
        low = option.bounds[0] if option.bounds else 0
        if raw not in (None, "") and not _at_least(raw, low):
            errors[option.name] = f"{option.label} must be a number of at least {low:g}."
    if not _value(values, "file").get("files"):
        errors["file"] = "Attach the Q&A file."
    return errors


def _at_least(raw: str, low: float) -> bool:
    """The form's own quick check; the command core checks each option's whole range."""
    try:
        return float(raw) >= low
    except ValueError:
        return False


def read_form(view: dict[str, Any]) -> TuneForm:
    values = view.get("state", {}).get("values", {})
    words = ["tune", (_value(values, "name").get("value") or "").strip()]
    base = (_value(values, "base").get("value") or "").strip()
    if base:
        words.append(f'base="{base}"' if " " in base else f"base={base}")
    for option in NUMBERS:
        raw = _value(values, option.name).get("value")
        if raw not in (None, ""):
            words.append(f"{option.name}={raw}")
    for option in CHOICES:
        picked = (_value(values, option.name).get("selected_option") or {}).get("value")
        if picked:
            words.append(f"{option.name}={picked}")
    meta = json.loads(view.get("private_metadata") or "{}")
    return TuneForm(text=" ".join(words),
                    files=tuple(_value(values, "file").get("files") or ()),
                    channel=str(meta.get("channel", "")), thread_ts=str(meta.get("thread_ts", "")))
