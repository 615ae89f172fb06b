"""Tests of engine.catalog."""
