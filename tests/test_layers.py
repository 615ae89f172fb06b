"""The one direction of dependency: bot -> engine -> storage, and heavy imports stay put."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"storage": 0, "engine": 1, "bot": 2}
HEAVY = {"torch", "transformers", "peft"}
# Modules allowed to import torch/transformers/peft (inside the engine, plus benchmarks).
HEAVY_OK = {"engine/hub.py", "engine/generation.py", "engine/training.py",
            "engine/evaluation.py", "engine/tuning.py", "engine/decoding.py",
            "engine/retraining.py", "engine/drafting.py"}


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def sources(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


def test_no_layer_imports_a_layer_above_it() -> None:
    wrong = []
    for layer, rank in LAYERS.items():
        for path in sources(layer):
            for name in imports(path):
                top = name.split(".")[0]
                if top in LAYERS and LAYERS[top] > rank:
                    wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert wrong == []


def test_heavy_libraries_stay_in_the_model_modules() -> None:
    wrong = []
    for layer in LAYERS:
        for path in sources(layer):
            rel = path.relative_to(ROOT).as_posix()
            if rel in HEAVY_OK or rel.startswith("bot/bench/"):
                continue
            for name in imports(path):
                if name.split(".")[0] in HEAVY:
                    wrong.append(f"{rel} imports {name}")
    assert wrong == []
