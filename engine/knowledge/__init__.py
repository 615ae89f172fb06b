"""A model's knowledge: the entries it answers from and the questions it could not answer.

- `prompt.py`: `Passage` (one retrieved entry) and `build_prompt_messages` (the chat messages
  with the entries put into context; training and chat use the same function). Pure Python.
- `ranking.py`: the retrieval methods (keyword BM25, sentence embeddings, hybrid), numpy only.
- `service.py`: `Knowledge`, the service: index a file's Q&A entries, documents, answered
  gaps; search; the per-model decline threshold and handoff text; gaps.

May import the engine's top-level modules, `engine.serving.embedder` (the embedding model,
loaded lazily) and `storage`. `prompt.py` imports nothing of the project, so
`engine/training` may use it.
"""

from engine.knowledge.prompt import Passage, build_prompt_messages

__all__ = ["Passage", "build_prompt_messages"]
