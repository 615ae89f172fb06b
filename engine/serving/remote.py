"""Answering through an OpenAI-compatible inference server that serves LoRA adapters (vLLM
started with `--enable-lora`, with runtime adapter loading allowed), instead of the built-in
runner: GPTSTORE_INFERENCE_URL.

    runner = RemoteRunner(settings, hub)
    runner.answer(target, messages, on_token=print)    # as ChatRunner.answer

For a tuned model the store pushes its live adapter before the first request that needs it:
the stored folder is copied into GPTSTORE_INFERENCE_ADAPTER_DIR (a folder the server reads)
and `POST /v1/load_lora_adapter {"lora_name", "lora_path"}` loads it; every request then
names it (`"model": "<lora_name>"`). A new live version is a new stored folder, hence a new
name, so no request is answered by a stale adapter. Answers stream (`stream: true`, server-
sent events); the limits are the runner's: GPTSTORE_MAX_NEW_TOKENS as `max_tokens`,
GPTSTORE_REQUEST_TIMEOUT, and GPTSTORE_QUEUE_SIZE requests in flight at most (more: Busy).
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from engine.artifacts.refs import is_ref, parse
from engine.errors import Busy, InvalidInput, ModelUnavailable
from engine.serving.runner import BUSY, Generated, timeout_error
from engine.settings import Settings
from engine.views import Target

TokenCallback = Callable[[str], None]


class RemoteRunner:
    def __init__(self, settings: Settings, hub: Any, *,
                 opener: Callable[..., Any] = urllib.request.urlopen) -> None:
        if not settings.inference_url:
            raise InvalidInput("RemoteRunner needs GPTSTORE_INFERENCE_URL.")
        self.settings, self.hub, self.opener = settings, hub, opener
        self.url = settings.inference_url.rstrip("/")
        self._lock = threading.Lock()
        self._push_lock = threading.Lock()
        self._in_flight = 0
        self._loaded: set[str] = set()

    # -- the Runner protocol (engine.chat.Runner) ---------------------------------------

    def answer(self, target: Target, messages: list[dict[str, str]], *,
               max_new_tokens: int | None = None, on_token: TokenCallback | None = None,
               timeout: float | None = None, copy_from: Sequence[str] = ()) -> Generated:
        """copy_from is not applied: the server decodes (the OpenAI-style API has no way to
        hold an answer to an entry); the entries are in the prompt all the same."""
        timeout = self.settings.request_timeout_s if timeout is None else timeout
        with self._lock:
            if self._in_flight >= self.settings.queue_size:
                raise Busy(BUSY)
            self._in_flight += 1
        try:
            return self._answer(target, messages, max_new_tokens, on_token, timeout)
        finally:
            with self._lock:
                self._in_flight -= 1

    def close(self) -> None:
        pass

    def queue_depth(self) -> int:
        return self._in_flight

    # -- the requests -------------------------------------------------------------------

    def model_name(self, target: Target) -> str:
        """The name a request uses: the adapter's (by content hash) or the base model's."""
        if target.adapter_path:
            key = parse(target.adapter_path).tree[:16] if is_ref(target.adapter_path) \
                else uuid.uuid5(uuid.NAMESPACE_URL, target.adapter_path).hex[:16]
            return f"{target.model_name}-{key}"
        return self.settings.inference_model or target.base_name

    def push(self, target: Target) -> str:
        """Make sure the server has the target's adapter; returns the model name to ask."""
        name = self.model_name(target)
        if not target.adapter_path or name in self._loaded:
            return name
        with self._push_lock:
            if name in self._loaded:
                return name
            local = self.hub.local(target.adapter_path)
            path = str(local)
            if self.settings.inference_adapter_dir:
                shared = Path(self.settings.inference_adapter_dir) / name
                if not (shared / "adapter_config.json").is_file():
                    temporary = shared.with_name(f".{name}.{uuid.uuid4().hex[:6]}")
                    shutil.copytree(local, temporary)
                    temporary.rename(shared)
                path = str(shared)
            status, body = self._post("/load_lora_adapter", {"lora_name": name, "lora_path": path},
                                      timeout=self.settings.request_timeout_s)
            if status != 200 and "already" not in body.lower():
                raise ModelUnavailable(f"The inference server at {self.url} would not load the "
                                       f"adapter of {target.model_name} ({status}: {body[:200]});"
                                       " check that it runs with --enable-lora and allows "
                                       "runtime LoRA updating.")
            self._loaded.add(name)
        return name

    def _answer(self, target: Target, messages: list[dict[str, str]],
                max_new_tokens: int | None, on_token: TokenCallback | None,
                timeout: float) -> Generated:
        started = time.monotonic()
        deadline = started + timeout
        model = self.push(target)
        turns = list(messages)
        if target.system_prompt and not any(m["role"] == "system" for m in turns):
            turns = [{"role": "system", "content": target.system_prompt}] + turns
        payload = {"model": model, "messages": turns, "stream": True, "temperature": 0,
                   "max_tokens": int(max_new_tokens or self.settings.max_new_tokens),
                   "stream_options": {"include_usage": True}}
        pieces: list[str] = []
        tokens, first = None, None
        for event in self._stream("/chat/completions", payload, deadline):
            if time.monotonic() > deadline:
                raise timeout_error(timeout)
            for choice in event.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content") or ""
                if piece:
                    first = first or time.monotonic()
                    pieces.append(piece)
                    if on_token is not None:
                        on_token(piece)
            if event.get("usage"):
                tokens = event["usage"].get("completion_tokens")
        now = time.monotonic()
        return Generated(text="".join(pieces), tokens=int(tokens or len(pieces)),
                         latency_ms=int((now - started) * 1000),
                         first_token_ms=int(((first or now) - started) * 1000))

    def _request(self, path: str, payload: dict[str, Any]) -> urllib.request.Request:
        headers = {"Content-Type": "application/json"}
        if self.settings.inference_api_key:
            headers["Authorization"] = f"Bearer {self.settings.inference_api_key}"
        return urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                      headers=headers, method="POST")

    def _post(self, path: str, payload: dict[str, Any], *, timeout: float) -> tuple[int, str]:
        try:
            with self.opener(self._request(path, payload), timeout=timeout) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as exc:
            raise self._unreachable(exc) from None

    def _stream(self, path: str, payload: dict[str, Any], deadline: float) -> Iterator[dict]:
        try:
            response = self.opener(self._request(path, payload),
                                   timeout=max(0.1, deadline - time.monotonic()))
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")[:300]
            if error.code in (400, 413, 422):
                raise InvalidInput(f"The inference server refused the request: {detail}") \
                    from None
            if error.code in (429, 503):
                raise Busy(BUSY) from None
            raise ModelUnavailable(f"The inference server at {self.url} answered {error.code}: "
                                   f"{detail}") from None
        except (socket.timeout, TimeoutError):
            raise timeout_error(self.settings.request_timeout_s) from None
        except (urllib.error.URLError, OSError) as exc:
            raise self._unreachable(exc) from None
        with response:
            try:
                for raw in response:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[len("data:"):].strip()
                    if data == "[DONE]":
                        return
                    yield json.loads(data)
            except (socket.timeout, TimeoutError):
                raise timeout_error(self.settings.request_timeout_s) from None

    def _unreachable(self, exc: BaseException) -> ModelUnavailable:
        return ModelUnavailable(f"The inference server at {self.url} cannot be reached "
                                f"({getattr(exc, 'reason', exc)}); check GPTSTORE_INFERENCE_URL "
                                "and that the server is running.")
