"""Retraining: schedules and retrain-now (service.py), schedule specs and fire times
(schedule.py), the APScheduler glue (scheduler.py) and the gate that decides whether a
candidate goes live (gate.py).

May import: engine.catalog, engine.jobs, engine's top-level modules, storage.
"""
