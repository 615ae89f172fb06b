"""Reading Q&A files in JSON: a list of records (or an object holding one) or JSON Lines, each
record a question/answer object, an OpenAI chat, a ShareGPT conversation or an Alpaca item."""

from __future__ import annotations

import json
from typing import Any

from engine.datasets.findings import ANSWER_NAMES, QUESTION_NAMES, Reading, clean

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bard": "assistant", "model": "assistant",
                  "bing": "assistant", "system": "system"}
CHAT_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def read_json(text: str) -> Reading:
    """A JSON document (a list of records, or an object holding one) or JSON Lines."""
    document, error = _loads(text)
    if error is not None and _looks_like_lines(text):
        return read_json_lines(text)
    if isinstance(error, json.JSONDecodeError):
        return Reading("json").refuse(
            f"line {error.lineno}: not valid JSON ({error.msg} at column {error.colno}); fix "
            "it or save the file again as JSON.")
    if error is not None:
        return Reading("json").refuse(f"line 1: {error}")
    reading = Reading("json")
    records = _records_of(document, reading)
    for index, record in enumerate(records, start=1):
        add_record(record, index, f"item {index}", reading)
    return reading


def _looks_like_lines(text: str) -> bool:
    """JSON Lines (one object a line) rather than one pretty-printed document."""
    lines = [line.strip() for line in text.split("\n", 1000)[:1000] if line.strip()]
    objects = sum(1 for line in lines if line.startswith("{") and line.endswith("}"))
    return objects >= 2 and objects * 2 >= len(lines) or len(lines) == 1 and lines[0][:1] == "{"


def _loads(text: str) -> tuple[Any, Exception | str | None]:
    """json.loads, with hostile input turned into a message instead of a crash."""
    try:
        return json.loads(text), None
    except RecursionError:  # "[[[[..." deeper than the interpreter's stack
        return None, ("the JSON is nested too deeply to be a Q&A file; each record should be "
                      'a flat object like {"question": "...", "answer": "..."}.')
    except json.JSONDecodeError as exc:
        return None, exc
    except ValueError:  # an integer of more than 4,300 digits
        return None, "a number in the JSON has thousands of digits; remove it."


def _records_of(document: Any, reading: Reading) -> list[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        lowered = {str(k).lower() for k in document}
        if lowered & {"messages", "conversations", *QUESTION_NAMES}:
            return [document]
        lists = [v for v in document.values() if isinstance(v, list)]
        if len(lists) == 1:  # {"data": [...]} and the like
            return lists[0]
    reading.refuse(f"The JSON holds just {_kind(document)}, not a list of Q&A records; use "
                   '[{"question": "...", "answer": "..."}, ...] or JSON Lines.')
    return []


def read_json_lines(text: str) -> Reading:
    """One JSON object per line."""
    reading = Reading("jsonl")
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            reading.blank += 1
            continue
        record, error = _loads(line)
        if isinstance(error, json.JSONDecodeError):
            reading.problems.add(f"line {number}: not valid JSON ({error.msg} at column "
                                 f"{error.colno}); each line must hold one JSON object.")
        elif error is not None:
            reading.problems.add(f"line {number}: {error}")
        else:
            add_record(record, number, f"line {number}", reading)
    return reading


def add_record(record: Any, position: int, where: str, reading: Reading) -> None:
    """One JSON record in any of the formats, as a conversation or a problem."""
    if not isinstance(record, dict):
        reading.problems.add(f"{where}: expected an object with a question and an answer, "
                             f"found {_kind(record)}.")
        return
    keys = {str(k).strip().lower(): v for k, v in record.items()}
    if "messages" in keys:
        kind, messages = "openai", _chat(keys["messages"], where, reading, "role", "content",
                                         CHAT_ROLES)
    elif "conversations" in keys:
        kind, messages = "sharegpt", _chat(keys["conversations"], where, reading, "from",
                                           "value", SHAREGPT_ROLES)
    else:
        kind, messages = _pair(keys, where, reading)
    if reading.format in ("json", "jsonl") and kind not in ("json",):
        reading.format = kind
    if messages is not None:
        reading.rows.append((position, where, messages))


def _pair(keys: dict[str, Any], where: str, reading: Reading) -> tuple[str, list | None]:
    alpaca = "instruction" in keys and "output" in keys
    question_key = next((k for k in QUESTION_NAMES if k in keys), None)
    answer_key = next((k for k in ANSWER_NAMES if k in keys), None)
    kind = "alpaca" if alpaca else "json"
    if question_key is None or answer_key is None:
        found = ", ".join(repr(k[:40]) for k in list(keys)[:12]) or "none"
        reading.problems.add(f"{where}: no question and answer fields (found {found}); use "
                             '{"question": "...", "answer": "..."} or the OpenAI chat format.')
        return kind, None
    parts = ["instruction", "input"] if alpaca else [question_key]
    texts = [_text(keys.get(k), where, k, reading) for k in parts]
    answer = _text(keys[answer_key], where, answer_key, reading)
    if any(t is None for t in texts) or answer is None:
        return kind, None
    question = "\n\n".join(t for t in texts if t)
    empty = [k for k, v in ((question_key, question), (answer_key, answer)) if not v]
    if empty:
        reading.problems.add(f"{where}: {' and '.join(repr(k) for k in empty)} "
                             f"{'are' if len(empty) > 1 else 'is'} empty; fill it in or "
                             "delete the record.")
        return kind, None
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    system = _text(keys.get("system"), where, "system", reading) if "system" in keys else ""
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return kind, messages


def _chat(turns: Any, where: str, reading: Reading, role_key: str, text_key: str,
          roles: dict[str, str]) -> list[dict[str, str]] | None:
    if not isinstance(turns, list) or not turns:
        reading.problems.add(f"{where}: the conversation must be a non-empty list of messages.")
        return None
    messages, bad = [], False
    for n, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict):
            reading.problems.add(f"{where}: message {n} is {_kind(turn)}, not an object with "
                                 f"'{role_key}' and '{text_key}'.")
            return None
        role = roles.get(str(turn.get(role_key, "")).strip().lower())
        if role is None:
            reading.problems.add(
                f"{where}: message {n} has {role_key} {str(turn.get(role_key))[:20]!r}; use "
                f"one of {', '.join(sorted(set(roles)))}.")
            bad = True
            continue
        content = _text(turn.get(text_key), where, f"message {n}", reading, parts=True)
        if content is None:
            bad = True
        elif not content:
            reading.problems.add(f"{where}: message {n} ({role}) is empty; write it or remove it.")
            bad = True
        else:
            messages.append({"role": role, "content": content})
    if bad:
        return None
    spoken = [m["role"] for m in messages if m["role"] != "system"]
    if "user" not in spoken or spoken[-1] != "assistant":
        reading.problems.add(f"{where}: the conversation needs a user message and must end "
                             "with an assistant answer; add the answer or remove the record.")
        return None
    return messages


def _text(value: Any, where: str, what: str, reading: Reading, parts: bool = False) -> str | None:
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, (dict,)) or (
            isinstance(value, list) and not parts):
        reading.problems.add(f"{where}: {what} is {_kind(value)}; it must be text.")
        return None
    if isinstance(value, (int, float)):
        value = str(value)
    if isinstance(value, list):  # OpenAI content parts: [{"type": "text", "text": "..."}]
        texts = [p.get("text") for p in value if isinstance(p, dict)]
        if len(texts) != len(value) or not all(isinstance(t, str) for t in texts):
            reading.problems.add(f"{where}: {what} has parts that are not text; only text "
                                 "can be trained on.")
            return None
        value = "\n".join(texts)
    return clean(value, where, what, reading)


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "true/false",
             type(None): "null", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)
