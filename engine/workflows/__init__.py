"""The job bodies: tune, retrain, evaluate, and the phases they share (steps.py). Each reads as
a short sequence of named steps over a JobContext. grounding.py: the tune's steps for answers
with sources (index the file, calibrate the decline threshold, the FAQ figures).

May import: engine.training, engine.catalog views via the JobContext, engine.retraining.gate,
engine.knowledge (the service, via the JobContext), engine's top-level modules; torch and peft.
"""
