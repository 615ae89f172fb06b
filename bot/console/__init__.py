"""The store in a terminal: the console (a REPL of the command language plus chat), plain-text
rendering of Replies (also used by the command line) and `gptstore demo`.

May import: bot.core, engine.
"""
