"""Tests of engine's top-level modules; one folder per engine package."""
