"""Tests of engine.jobs."""
