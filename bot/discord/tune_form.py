"""The fine-tune form: `/store tune` without a file opens a modal with the model's name, its
base, a file upload (`ui.FileUpload`, discord.py 2.7), the optimizer and the other tune
options (TUNE_OPTIONS); a submission becomes the same `tune NAME key=value ...` text the other
platforms send, with the uploaded file attached, so the command core validates it once.

Discord allows five fields in a modal, so the numeric options share one `key=value` field.
A form lives in the process that opened it, for `FORM_TIMEOUT_S`; a restart in between
loses it (the user opens it again).
"""

from __future__ import annotations

from typing import Any, Callable, Coroutine

import discord

from engine.training.config import TUNE_OPTIONS

FORM_TIMEOUT_S = 15 * 60.0
NUMBERS = tuple(o for o in TUNE_OPTIONS if o.type in ("int", "float"))
CHOICES = tuple(o for o in TUNE_OPTIONS if o.type == "choice")
SETTINGS_HELP = "key=value words: " + ", ".join(o.name for o in NUMBERS)
Submit = Callable[[discord.Interaction, str, list[discord.Attachment], "str | None"],
                  Coroutine[Any, Any, None]]


class TuneForm(discord.ui.Modal):
    """The modal; `submit(interaction, command_text, files)` runs what was asked."""

    def __init__(self, submit: Submit, *, name: str = "",
                 options: dict[str, Any] | None = None) -> None:
        super().__init__(title="Fine-tune a model", timeout=FORM_TIMEOUT_S)
        options = {k: v for k, v in (options or {}).items() if v is not None}
        self._submit = submit
        self.model_name = discord.ui.TextInput(custom_id="name", placeholder="acme-support",
                                               default=name or None, max_length=100)
        self.base = discord.ui.TextInput(custom_id="base", required=False, max_length=200,
                                         default=str(options.get("base") or "") or None,
                                         placeholder="the store's default base")
        self.file = discord.ui.FileUpload(custom_id="file", required=True, max_values=1)
        self.choices = {o.name: discord.ui.Select(
            custom_id=o.name, required=False, min_values=0, max_values=1,
            options=[discord.SelectOption(label=c, value=c, default=options.get(o.name) == c)
                     for c in o.choices]) for o in CHOICES}
        typed = " ".join(f"{o.name}={_text(options[o.name])}" for o in NUMBERS
                         if o.name in options)
        self.settings = discord.ui.TextInput(
            custom_id="settings", required=False, max_length=400, default=typed or None,
            placeholder=_cut(" ".join(f"{o.name}={o.example}" for o in NUMBERS if o.example)))
        self.add_item(discord.ui.Label(text="Model name", component=self.model_name,
                                       description="Lowercase letters, digits and dashes; "
                                                   "new or yours."))
        self.add_item(discord.ui.Label(text="Q&A file", component=self.file,
                                       description="CSV/TSV with question and answer columns, "
                                                   "JSONL or JSON."))
        self.add_item(discord.ui.Label(text="Base model", component=self.base))
        for option in CHOICES:
            self.add_item(discord.ui.Label(text=option.label, component=self.choices[option.name],
                                           description=_cut(option.help)))
        self.add_item(discord.ui.Label(text="Settings", component=self.settings,
                                       description=_cut(SETTINGS_HELP)))

    def command_text(self) -> str:
        """`tune NAME base=B optimizer=O epochs=3 ...` from what was filled in."""
        words = ["tune", self.model_name.value.strip()]
        base = self.base.value.strip()
        if base:
            words.append(f'base="{base}"' if " " in base else f"base={base}")
        for name, select in self.choices.items():
            if select.values:
                words.append(f"{name}={select.values[0]}")
        words += self.settings.value.split()
        return " ".join(w for w in words if w)

    async def on_submit(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        await self._submit(interaction, self.command_text(), list(self.file.values),
                           settings_problem(self.settings.value))


def settings_problem(settings: str) -> str | None:
    """One sentence when the Settings field holds something other than key=value words of
    the numeric tune options (the command core checks the values themselves)."""
    known = {o.name for o in NUMBERS}
    for word in settings.split():
        if "=" not in word or word.split("=", 1)[0] not in known:
            return (f"{word!r} is not a setting; the Settings field takes {SETTINGS_HELP}, "
                    "e.g. epochs=3.")
    return None


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _cut(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
