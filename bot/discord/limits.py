"""Discord's limits on what a message or a modal may carry, written once: the renderer keeps
within them and the fake Discord (testing.py) refuses a payload that breaks one, as Discord
answers 400 "Invalid Form Body".

    problems(message_payload)   -> ["content is 2,013 characters (over 2000)", ...]
    modal_problems(modal_data)  -> [...]
"""

from __future__ import annotations

from typing import Any, Iterator

MESSAGE_LIMIT = 2000
EMBEDS_PER_MESSAGE = 10
EMBED_TITLE_LIMIT = 256
EMBED_DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
MAX_FIELDS = 25
EMBED_TOTAL_LIMIT = 6000
ACTION_ROWS = 5  # classic messages: rows of components
ROW_WIDTH = 5  # buttons in one row
BUTTON_LABEL_LIMIT = 80
CUSTOM_ID_LIMIT = 100
COMPONENTS_V2 = 1 << 15  # the message flag IS_COMPONENTS_V2
V2_COMPONENTS = 40  # every component of a V2 message, nested ones included
V2_TEXT_LIMIT = 4000  # all text displays of a V2 message together
SECTION_TEXTS = 3
GALLERY_ITEMS = 10
MODAL_TITLE_LIMIT = 45
MODAL_COMPONENTS = 5
LABEL_LIMIT = 45
LABEL_DESCRIPTION_LIMIT = 100
PLACEHOLDER_LIMIT = 100
FILES_PER_UPLOAD = 10
THREAD_NAME_LIMIT = 100

ACTION_ROW, BUTTON, TEXT_INPUT, SECTION, TEXT_DISPLAY, THUMBNAIL, MEDIA_GALLERY = 1, 2, 4, 9, 10, 11, 12
SEPARATOR, CONTAINER, LABEL, FILE_UPLOAD = 14, 17, 18, 19
SELECTS = (3, 5, 6, 7, 8)
V2_ONLY = (SECTION, TEXT_DISPLAY, THUMBNAIL, MEDIA_GALLERY, SEPARATOR, CONTAINER, 13)


def problems(payload: dict[str, Any] | None, *, was_v2: bool = False) -> list[str]:
    """What Discord would refuse in a message create/edit payload (`was_v2`: the message
    being edited already has the Components V2 flag, which can never be taken off)."""
    body = payload or {}
    found: list[str] = []
    flags = body.get("flags")
    v2 = bool((flags or 0) & COMPONENTS_V2) or (was_v2 and flags is None)
    if was_v2 and flags is not None and not v2:
        found.append("the Components V2 flag cannot be removed from a message")
    content = body.get("content") or ""
    embeds = body.get("embeds") or []
    components = body.get("components") or []
    if v2:
        if content or embeds:
            found.append("a Components V2 message cannot have content or embeds")
        found += _v2_problems(components)
    else:
        if len(content) > MESSAGE_LIMIT:
            found.append(f"content is {len(content):,} characters (over {MESSAGE_LIMIT})")
        found += _embed_problems(embeds)
        found += _classic_problems(components)
    return found


def _embed_problems(embeds: list[dict]) -> list[str]:
    found = []
    if len(embeds) > EMBEDS_PER_MESSAGE:
        found.append(f"{len(embeds)} embeds (over {EMBEDS_PER_MESSAGE})")
    for embed in embeds:
        title, text = embed.get("title") or "", embed.get("description") or ""
        fields = embed.get("fields") or []
        total = len(title) + len(text)
        if len(title) > EMBED_TITLE_LIMIT:
            found.append(f"embed title over {EMBED_TITLE_LIMIT}")
        if len(text) > EMBED_DESCRIPTION_LIMIT:
            found.append(f"embed description over {EMBED_DESCRIPTION_LIMIT}")
        if len(fields) > MAX_FIELDS:
            found.append(f"{len(fields)} embed fields (over {MAX_FIELDS})")
        for f in fields:
            name, value = f.get("name") or "", f.get("value") or ""
            total += len(name) + len(value)
            if not name or not value or len(name) > FIELD_NAME_LIMIT or \
                    len(value) > FIELD_VALUE_LIMIT:
                found.append("an embed field is empty or too long")
        if total > EMBED_TOTAL_LIMIT:
            found.append(f"embed text is {total} characters (over {EMBED_TOTAL_LIMIT})")
    return found


def _classic_problems(components: list[dict]) -> list[str]:
    found = []
    if len(components) > ACTION_ROWS:
        found.append(f"{len(components)} action rows (over {ACTION_ROWS})")
    for row in components:
        if row.get("type") != ACTION_ROW:
            found.append(f"component type {row.get('type')} needs the Components V2 flag")
            continue
        found += _row_problems(row)
    return found + _id_problems(components)


def _row_problems(row: dict) -> list[str]:
    children = row.get("components") or []
    found = []
    if not children:
        found.append("an empty action row")
    if any(c.get("type") in SELECTS for c in children) and len(children) > 1:
        found.append("a select menu must be alone in its row")
    if len(children) > ROW_WIDTH:
        found.append(f"{len(children)} buttons in a row (over {ROW_WIDTH})")
    for c in children:
        if c.get("type") == BUTTON:
            found += _button_problems(c)
    return found


def _button_problems(button: dict) -> list[str]:
    found = []
    if len(button.get("label") or "") > BUTTON_LABEL_LIMIT:
        found.append(f"a button label over {BUTTON_LABEL_LIMIT} characters")
    if button.get("style") == 5:
        if not button.get("url"):
            found.append("a link button without a url")
    elif not button.get("custom_id"):
        found.append("a button without a custom_id")
    return found


def _v2_problems(components: list[dict]) -> list[str]:
    found = []
    everything = list(_walk(components))
    if not components:
        found.append("a Components V2 message with no components")
    if len(everything) > V2_COMPONENTS:
        found.append(f"{len(everything)} components (over {V2_COMPONENTS})")
    text = sum(len(c.get("content") or "") for c in everything if c.get("type") == TEXT_DISPLAY)
    if text > V2_TEXT_LIMIT:
        found.append(f"text displays hold {text:,} characters (over {V2_TEXT_LIMIT})")
    for c in everything:
        kind = c.get("type")
        if kind == ACTION_ROW:
            found += _row_problems(c)
        elif kind == SECTION:
            texts = c.get("components") or []
            if not 1 <= len(texts) <= SECTION_TEXTS or \
                    any(t.get("type") != TEXT_DISPLAY for t in texts):
                found.append(f"a section holds 1 to {SECTION_TEXTS} text displays")
            if (c.get("accessory") or {}).get("type") not in (BUTTON, THUMBNAIL):
                found.append("a section needs a button or thumbnail accessory")
        elif kind == MEDIA_GALLERY:
            items = c.get("items") or []
            if not 1 <= len(items) <= GALLERY_ITEMS:
                found.append(f"a media gallery holds 1 to {GALLERY_ITEMS} items")
            if any(not (i.get("media") or {}).get("url") for i in items):
                found.append("a media gallery item without a url")
        elif kind == CONTAINER and any(ch.get("type") == CONTAINER
                                       for ch in c.get("components") or []):
            found.append("a container inside a container")
        elif kind == TEXT_DISPLAY and not c.get("content"):
            found.append("an empty text display")
        elif kind in (TEXT_INPUT, LABEL, FILE_UPLOAD):
            found.append(f"component type {kind} belongs in a modal")
    return found + _id_problems(components)


def _id_problems(components: list[dict]) -> list[str]:
    ids = [c["custom_id"] for c in _walk(components) if c.get("custom_id")]
    found = [f"a custom_id over {CUSTOM_ID_LIMIT} characters" for i in ids
             if len(i) > CUSTOM_ID_LIMIT]
    if len(set(ids)) != len(ids):
        found.append("two components share a custom_id")
    return found


def _walk(components: list[dict]) -> Iterator[dict]:
    for c in components:
        yield c
        yield from _walk(c.get("components") or [])
        if c.get("accessory"):
            yield from _walk([c["accessory"]])
        if c.get("component"):
            yield from _walk([c["component"]])


def modal_problems(data: dict[str, Any] | None) -> list[str]:
    """What Discord would refuse in a modal (an interaction callback of type 9)."""
    body = data or {}
    found = []
    title = body.get("title") or ""
    if not title or len(title) > MODAL_TITLE_LIMIT:
        found.append(f"a modal title of 1 to {MODAL_TITLE_LIMIT} characters")
    if not body.get("custom_id") or len(body["custom_id"]) > CUSTOM_ID_LIMIT:
        found.append("a modal needs a custom_id of at most 100 characters")
    top = body.get("components") or []
    if not 1 <= len(top) <= MODAL_COMPONENTS:
        found.append(f"{len(top)} modal components (1 to {MODAL_COMPONENTS})")
    for c in top:
        if c.get("type") == LABEL:
            if not c.get("label") or len(c["label"]) > LABEL_LIMIT:
                found.append(f"a label of 1 to {LABEL_LIMIT} characters")
            if len(c.get("description") or "") > LABEL_DESCRIPTION_LIMIT:
                found.append(f"a label description over {LABEL_DESCRIPTION_LIMIT} characters")
            inner = c.get("component") or {}
        elif c.get("type") == ACTION_ROW:
            inner = (c.get("components") or [{}])[0]
        else:
            found.append(f"component type {c.get('type')} at the top of a modal")
            continue
        if len(inner.get("placeholder") or "") > PLACEHOLDER_LIMIT:
            found.append(f"a placeholder over {PLACEHOLDER_LIMIT} characters")
        if inner.get("type") == FILE_UPLOAD and not 1 <= inner.get("max_values", 1) <= \
                FILES_PER_UPLOAD:
            found.append(f"a file upload takes 1 to {FILES_PER_UPLOAD} files")
        if inner.get("type") == FILE_UPLOAD and c.get("type") != LABEL:
            found.append("a file upload must sit in a label")
    return found + _id_problems(top)
