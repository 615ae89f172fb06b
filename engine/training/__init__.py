"""LoRA training: TrainConfig and the tune options users give (config.py), answer-only
encoding (encoding.py), the explicit training loop (loop.py), checkpoints (checkpoint.py),
the thread count on a CPU (threads.py), exact match / token F1 / validation loss
(evaluation.py) and the loss plot (plots.py).

May import: engine's top-level modules; torch, transformers and peft (inside functions, so
that config.py and encoding.py stay cheap to import).
"""
