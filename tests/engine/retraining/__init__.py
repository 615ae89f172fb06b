"""Tests of engine.retraining."""
