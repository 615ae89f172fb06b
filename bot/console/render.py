"""A Reply as plain terminal text (optionally coloured): the console's and the CLI's rendering."""

from __future__ import annotations

from bot.core.reply import Reply
from bot.core.text import footer_lines

COLOURS = {"error": "31", "busy": "33", "success": "32", "info": "36", "chat": "0"}


def render(reply: Reply, *, colour: bool = False) -> str:
    """Title, text, an aligned table of fields, the image path and the button commands."""
    lines: list[str] = []
    if reply.title:
        lines.append(_paint(reply.title, COLOURS.get(reply.kind, "0"), colour, bold=True))
    if reply.text:
        text = reply.text
        if reply.kind in ("error", "busy") and not reply.title:
            text = _paint(text, COLOURS[reply.kind], colour)
        lines.append(text)
    if reply.fields:
        width = min(max(len(name) for name, _ in reply.fields), 34)
        for name, value in reply.fields:
            value_lines = str(value).splitlines() or [""]
            lines.append(f"  {name + ':':<{width + 1}} {value_lines[0]}")
            lines.extend(f"  {'':<{width + 1}} {more}" for more in value_lines[1:])
    for line in footer_lines(reply):
        lines.append(_paint(line, "2", colour))
    if reply.image is not None and str(reply.image) not in reply.text:
        lines.append(f"Image: {reply.image}")
    if reply.buttons:
        lines.append("Next: " + " | ".join(f"{b.label}: `{b.command}`" for b in reply.buttons))
    return "\n".join(lines)


def _paint(text: str, code: str, colour: bool, bold: bool = False) -> str:
    if not colour or code == "0" and not bold:
        return text
    prefix = f"\033[{'1;' if bold else ''}{code}m"
    return f"{prefix}{text}\033[0m"
