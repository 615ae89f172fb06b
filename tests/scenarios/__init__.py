"""End-to-end scenarios: isolation, secrets, hostile input, limits, Celery kills, the real model."""
