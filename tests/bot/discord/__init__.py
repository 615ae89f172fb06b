"""Tests of bot.discord."""
