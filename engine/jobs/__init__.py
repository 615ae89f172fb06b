"""Jobs: the service users call (submit, list, cancel, follow), the backends that ring a
worker (local child processes, threads, inline, Celery), the plan a worker runs with, the
runner that claims a job and beats its heartbeat, the Celery app, the `gptstore worker` loop
and `python -m engine.jobs`. Job bodies live in engine/workflows and are named by string.

May import: engine's top-level modules (never engine.app: the engine factory is named by
string) and storage.
"""
