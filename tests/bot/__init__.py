"""Tests of the chat adapters, one folder per bot package."""
