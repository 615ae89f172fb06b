"""Tests of bot.core."""
