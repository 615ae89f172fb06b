"""Answering through an OpenAI-compatible inference server (GPTSTORE_INFERENCE_URL): the store
pushes each live adapter once and names it per request; answers stream; limits hold. Tested
against tests/helpers/openai_server.py, a stand-in that follows vLLM's published API and
answers with the built-in runner (vLLM itself needs a GPU and cannot be installed here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.app import Engine
from engine.errors import Busy, ModelUnavailable
from engine.identity import Caller
from engine.jobs.backends import NullBackend
from engine.serving.remote import RemoteRunner
from engine.serving.runner import ChatRunner
from engine.weights import ModelHub
from tests.engine.serving.test_runner import make_adapter
from tests.helpers.openai_server import FakeVLLM
from tests.helpers.s3 import free_port

ADMIN = Caller.console("admin")
QUESTION = "What is the door code of room 1?"


@pytest.fixture
def server(settings, tiny_base_dir: Path):
    runner = ChatRunner(ModelHub(settings), settings, speculative=False)
    fake = FakeVLLM(runner, "tiny", str(tiny_base_dir)).start()
    yield fake
    fake.close()
    runner.close()


def store_with_version(settings, tiny_base_dir: Path, tmp_path: Path, **changes) -> Engine:
    engine = Engine.open(settings.with_(**changes), job_backend=NullBackend())
    engine.catalog.add_base(ADMIN, "tiny", str(tiny_base_dir))
    model = engine.catalog.create_or_get_tuned(ADMIN, "doors", "tiny")
    adapter = make_adapter(tiny_base_dir, tmp_path / "adapter", seed=3)
    engine.catalog.add_version(model.id, path=engine.artifacts.put_folder(adapter), live=True)
    return engine


def test_answers_come_from_the_server_with_the_live_adapter_pushed_once(
        settings, tiny_base_dir: Path, tmp_path: Path, server: FakeVLLM) -> None:
    shared = tmp_path / "adapters-the-server-reads"
    shared.mkdir()
    engine = store_with_version(settings, tiny_base_dir, tmp_path, inference_url=server.url,
                                inference_adapter_dir=str(shared), max_new_tokens=12)
    builtin = ChatRunner(engine.hub, engine.settings, speculative=False)
    try:
        assert isinstance(engine.runner, RemoteRunner)
        streamed: list[str] = []
        first = engine.chat.answer(ADMIN, "doors", QUESTION, on_token=streamed.append)
        again = engine.chat.answer(ADMIN, "doors", QUESTION)
        target = engine.catalog.live_target(engine.catalog.resolve(ADMIN, "doors"))
        expected = builtin.answer(target, [{"role": "user", "content": QUESTION}])
        assert first.text == expected.text == again.text and first.text
        assert "".join(streamed) == first.text and len(streamed) > 1  # it streamed
        loads = [body for path, body in server.requests if path == "/v1/load_lora_adapter"]
        assert len(loads) == 1  # pushed once, named by the stored folder's hash
        name = loads[0]["lora_name"]
        assert name.startswith("doors-") and Path(loads[0]["lora_path"]).parent == shared
        chats = [body for path, body in server.requests if path == "/v1/chat/completions"]
        assert [c["model"] for c in chats] == [name, name]
        assert all(c["stream"] and c["max_tokens"] == 12 for c in chats)
        base = engine.chat.answer(ADMIN, "tiny", QUESTION)  # a base model: no adapter
        assert base.text and server.requests[-1][1]["model"] == "tiny"
    finally:
        builtin.close()
        engine.close()


def test_limits_hold_and_a_missing_server_is_explained(settings, tiny_base_dir: Path,
                                                       tmp_path: Path, server: FakeVLLM) -> None:
    engine = store_with_version(settings, tiny_base_dir, tmp_path, inference_url=server.url,
                                request_timeout_s=0.5, queue_size=1)
    try:
        server.delay_s = 3.0
        with pytest.raises(Busy, match="longer than 0.5 s"):
            engine.chat.answer(ADMIN, "tiny", QUESTION)
        server.delay_s = 0.0
        gone = RemoteRunner(engine.settings.with_(
            inference_url=f"http://127.0.0.1:{free_port()}/v1"), engine.hub)
        with pytest.raises(ModelUnavailable, match="cannot be reached.*GPTSTORE_INFERENCE_URL"):
            gone.answer(engine.catalog.live_target(engine.catalog.resolve(ADMIN, "tiny")), [{"role": "user", "content": "Hi"}])
    finally:
        engine.close()
