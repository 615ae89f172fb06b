"""Benchmarks: `gptstore bench NAME` runs bench/NAME.py's run(args) -> dict of figures.

The fourth floor: may import bot, engine and storage (and engine privates); nothing imports
it, and the command line finds it by name.
"""
