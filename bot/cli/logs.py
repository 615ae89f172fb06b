"""Where long-running commands log: home/logs/gptstore.log, with tracebacks and reference ids."""

from __future__ import annotations

import logging

from engine.settings import MaskingFormatter, Settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_file_log(settings: Settings) -> None:
    """Long-running commands log (with tracebacks and reference ids) to home/logs."""
    root = logging.getLogger("gptstore")
    path = settings.logs_dir / "gptstore.log"
    if any(getattr(h, "baseFilename", None) == str(path) for h in root.handlers):
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(MaskingFormatter(LOG_FORMAT))  # no URL password reaches the file
    root.addHandler(handler)
    root.setLevel(logging.INFO)
