"""A stand-in for vLLM's OpenAI-compatible server (`vllm serve BASE --enable-lora` with
VLLM_ALLOW_RUNTIME_LORA_UPDATING=True), following its published API:

- POST /v1/load_lora_adapter {"lora_name", "lora_path"}: 200, or 400 when the name is taken
  or the folder is not a LoRA adapter;
- GET /v1/models;
- POST /v1/chat/completions {"model", "messages", "max_tokens", "stream": true, ...}: server-
  sent events of chat.completion.chunk objects, then `data: [DONE]`; 404 for unknown models.

It answers for real: the built-in runner on the tiny model, with each loaded adapter read from
its lora_path, so a test can compare its answers with the built-in runner's. It is not vLLM
(vLLM needs a GPU and is not installable here); it is what a vLLM client may rely on.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from engine.serving.runner import ChatRunner
from engine.views import Target


class FakeVLLM:
    def __init__(self, runner: ChatRunner, base_name: str, base_path: str) -> None:
        self.runner, self.base_name, self.base_path = runner, base_name, base_path
        self.loras: dict[str, str] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.delay_s = 0.0  # seconds before answering (to test the client's timeout)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> "FakeVLLM":
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def load(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name, path = body.get("lora_name", ""), body.get("lora_path", "")
        if name in self.loras:
            return 400, {"error": {"message": f"The lora adapter '{name}' has already been "
                                              "loaded.", "type": "InvalidUserInput"}}
        if not (Path(path) / "adapter_config.json").is_file():
            return 400, {"error": {"message": f"No adapter found at {path}", "type": "NotFound"}}
        self.loras[name] = path
        return 200, {}

    def target(self, model: str) -> Target | None:
        if model == self.base_name:
            return Target(model_name=model, base_name=model, base_path=self.base_path,
                          adapter_path=None, version=None, version_id=None)
        if model in self.loras:
            return Target(model_name=model, base_name=self.base_name, base_path=self.base_path,
                          adapter_path=self.loras[model], version=None, version_id=None)
        return None


def _handler(fake: FakeVLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/v1/models":
                names = [fake.base_name, *fake.loras]
                self._json(200, {"object": "list", "data": [{"id": n, "object": "model"}
                                                            for n in names]})
            else:
                self._json(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            fake.requests.append((self.path, body))
            if self.path == "/v1/load_lora_adapter":
                self._json(*fake.load(body))
            elif self.path == "/v1/chat/completions":
                self._chat(body)
            else:
                self._json(404, {"error": {"message": f"no route {self.path}"}})

        def _chat(self, body: dict[str, Any]) -> None:
            target = fake.target(body.get("model", ""))
            if target is None:
                self._json(404, {"error": {"message": f"The model `{body.get('model')}` does "
                                                      "not exist.", "type": "NotFoundError"}})
                return
            time.sleep(fake.delay_s)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def send(payload: str) -> None:
                data = f"data: {payload}\n\n".encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
                return json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk",
                                   "model": body["model"], "choices": [
                                       {"index": 0, "delta": delta, "finish_reason": finish}]})

            send(chunk({"role": "assistant", "content": ""}))
            generated = fake.runner.answer(target, body["messages"],
                                           max_new_tokens=int(body.get("max_tokens") or 16),
                                           on_token=lambda piece: send(chunk({"content": piece})))
            send(chunk({}, "stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                send(json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk",
                                 "choices": [], "usage": {"completion_tokens": generated.tokens}}))
            send("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler
