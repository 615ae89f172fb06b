"""Tests of storage against SQLite and PostgreSQL."""
