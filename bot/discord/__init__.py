"""Discord through discord.py: the client and its slash commands, chat in channels, threads
and DMs, reactions, rendering (text, embeds, buttons), job progress, the transport that lets
tests point it at a local server, and the fake Discord REST + gateway server (testing.py).

May import: bot.core, engine, discord (the library: absolute imports resolve to it).
"""
