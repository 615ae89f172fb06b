"""Tests of bot.slack."""
