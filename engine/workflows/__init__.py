"""The job bodies: tune, retrain, evaluate, and the phases they share (steps.py). Each reads as
a short sequence of named steps over a JobContext.

May import: engine.training, engine.catalog views via the JobContext, engine.retraining.gate,
engine's top-level modules; torch and peft.
"""
