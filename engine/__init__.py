"""The store's behaviour, below the chat adapters and above storage.

Top-level modules everything uses: app (the composition root), settings, errors, identity
(Caller), views (typed values handed to the bot), limits, chat (answering and curation),
weights (base model weights), bundled (the shipped base model), testing (a tiny model).
Packages by capability: catalog, datasets, training, serving, jobs, workflows, retraining.

May import: storage. torch, transformers and peft only in training/, serving/, workflows/,
weights.py and testing.py.
"""
