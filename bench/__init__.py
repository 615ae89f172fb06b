"""Benchmarks: `gptstore bench NAME` runs bot/bench/NAME.py run(args) -> dict of figures."""
