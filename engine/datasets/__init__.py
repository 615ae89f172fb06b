"""Datasets: uploaded Q&A files read per format, checked, split and stored as examples.

Lives here: `files` (size, encoding and format detection, all problems at once), `findings`
(the problem list and cell cleaning shared by the readers), `csv_format` and `json_format`
(one reader per family of formats), `splits` (train / validation / test), `service`
(`Datasets`, the engine service), and `samples/` (the bundled sample FAQ, and the general
questions a tune calibrates its decline threshold on).
May import: engine's top-level modules and `storage`; never torch.
"""

from pathlib import Path

SAMPLE_FAQ = Path(__file__).resolve().parent / "samples" / "sample_faq.csv"
"""The bundled sample FAQ (46 pairs), used by the demo, the benchmarks and the tests."""

GENERAL_QUESTIONS = Path(__file__).resolve().parent / "samples" / "general_questions.txt"
"""General questions a support bot must decline (one a line): a tune calibrates the decline
threshold on half of them and measures it on the other half (docs/grounding.md)."""
