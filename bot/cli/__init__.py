"""The `gptstore` command line: argument parsing (main.py), one function per subcommand
(commands.py), `gptstore serve` (serve.py) and the log file of long-running commands.

May import: bot.core, bot.console, bot.slack, bot.discord, engine. The benchmarks are found
by name at run time (bench/ sits above the product and nothing imports it).
"""
