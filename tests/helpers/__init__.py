"""Shared test helpers: stores and tenants, Q&A files, fake job bodies, the Slack rig."""
