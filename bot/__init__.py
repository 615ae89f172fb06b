"""The chat front ends. Each turns a platform event into a Command, makes one engine call
through bot/core's Dispatcher and renders the Reply its platform's way.

Packages: core (the command language, platform-neutral), slack, discord, console (terminal,
demo), cli (the `gptstore` command line). May import: engine, and the platform libraries
(slack-bolt, discord.py); never storage, torch, transformers, peft, sqlalchemy or sqlmodel.
"""
