"""Slack through slack-bolt: the Bolt app and its HTTP server or Socket Mode client, the event,
command, modal and button handlers, Block Kit rendering, posting and streaming, file
downloads, and a fake Slack Web API for tests and benchmarks (testing.py).

May import: bot.core, engine, slack_bolt and slack_sdk.
"""
