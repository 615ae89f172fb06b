"""The `/store` slash command group, built from the command core's specs, and how an
interaction is answered: directly when the core is quick, else deferred and followed up.

Each subcommand's typed options come from `Dispatcher.commands()` (a Q&A file becomes an
attachment option, numbers become number options, model names autocomplete from the
catalog); the invocation becomes a `Command` value and goes through the one dispatcher.
`/store tune` without a file opens the tune form instead (bot/discord/tune_form.py), so its
options are all optional here. The group can be used where the app is installed in a server
and, installed by a user, in DMs and private channels (user installs).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import Any, Optional

import discord
from discord import app_commands

from bot.core.command import Attachment, Command
from bot.core.dispatch import Context, error_reply
from bot.core.reply import Reply
from bot.core.text import unexpected_reply
from bot.discord.context import (
    DiscordDeps,
    first_time,
    interaction_caller,
    origin_of,
    private_place,
)
from bot.discord.progress import DiscordJobSink
from bot.discord.rating import rating_view
from bot.discord.render import format_bytes, render
from bot.discord.tune_form import TuneForm
from engine.errors import InvalidInput

ANNOTATIONS: dict[str, Any] = {"str": str, "int": int, "float": float, "choice": str,
                               "file": discord.Attachment}
AUTOCOMPLETE_SCAN = 200  # models whose names are matched against what was typed
MODEL_OPTIONS = frozenset({"model", "base"})  # values that name a store model: autocomplete
FORMS = frozenset({"tune"})  # left without its file, the command opens a form
# A server install, and a user install: the user's own /store in DMs and private channels.
INSTALLS = app_commands.AppInstallationType(guild=True, user=True)
CONTEXTS = app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=True)


def build_store_group(deps: DiscordDeps) -> app_commands.Group:
    """`/store SUBCOMMAND ...`, one subcommand per command of the language."""
    group = app_commands.Group(name="store", description="Find, fine-tune, deploy and chat "
                                                         "with language models",
                               allowed_installs=INSTALLS, allowed_contexts=CONTEXTS)
    for spec in deps.dispatcher.commands():
        group.add_command(_subcommand(deps, spec))
    return group


def _subcommand(deps: DiscordDeps, spec: Any) -> app_commands.Command:
    async def callback(interaction: discord.Interaction, **values: Any) -> None:
        await answer_command(deps, interaction, spec, values)

    async def complete_model(interaction: discord.Interaction,
                             current: str) -> list[app_commands.Choice[str]]:
        return await model_choices(deps, interaction, current)

    params = [inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                annotation=discord.Interaction)]
    descriptions, choices, autocomplete = {}, {}, {}
    for option in spec.options:
        annotation = ANNOTATIONS.get(option.type, str)
        required = option.required and spec.name not in FORMS  # the form asks for the rest
        params.append(inspect.Parameter(
            option.name, inspect.Parameter.KEYWORD_ONLY,
            annotation=annotation if required else Optional[annotation],
            default=inspect.Parameter.empty if required else None))
        descriptions[option.name] = (option.help or option.name)[:100]
        if option.type == "choice" and option.choices:
            choices[option.name] = [app_commands.Choice(name=c, value=c) for c in option.choices]
        elif option.name in MODEL_OPTIONS and option.type == "str":
            autocomplete[option.name] = complete_model
    callback.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    callback.__discord_app_commands_param_description__ = descriptions  # type: ignore[attr-defined]
    callback.__discord_app_commands_param_choices__ = choices  # type: ignore[attr-defined]
    callback.__discord_app_commands_param_autocomplete__ = (  # type: ignore[attr-defined]
        autocomplete)
    return app_commands.Command(name=spec.name, description=(spec.summary or spec.name)[:100],
                                callback=callback)


def to_command(spec: Any, values: dict[str, Any], files: tuple[Attachment, ...]) -> Command:
    """Slash option values -> the same Command the text `/store NAME ...` parses to."""
    args = [str(values[o.name]) for o in spec.positionals if values.get(o.name) is not None]
    options = {o.name: _text(values[o.name]) for o in spec.keywords
               if values.get(o.name) is not None}
    text = " ".join(args)
    return Command(name=spec.name, args=() if spec.free_text else tuple(args), options=options,
                   attachments=files, text=text)


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


async def answer_command(deps: DiscordDeps, interaction: discord.Interaction, spec: Any,
                         values: dict[str, Any]) -> None:
    uploads = [v for v in values.values() if isinstance(v, discord.Attachment)]
    if spec.name in FORMS and not uploads:  # a modal must be the first answer, within 3 s
        await interaction.response.send_modal(TuneForm(
            functools.partial(submit_form, deps), name=str(values.get("name") or ""),
            options=values))
        return
    caller = interaction_caller(interaction, deps.settings.discord_admin_role)
    refused = upload_refusal(deps, uploads)
    if refused is not None:
        await respond(deps, interaction, refused, deferred=False)
        return

    async def work() -> Reply:
        try:
            files = tuple([Attachment(a.filename, await download(deps, a)) for a in uploads])
        except InvalidInput as exc:
            return error_reply(exc)
        ctx = Context(caller=caller, attachments=files,
                      origin=origin_of(caller, interaction=str(interaction.id)))
        return await deps.off_loop(deps.dispatcher.handle, to_command(spec, values, files), ctx)

    await run_and_respond(deps, interaction, work())


async def submit_form(deps: DiscordDeps, interaction: discord.Interaction, text: str,
                      uploads: list[discord.Attachment], problem: str | None) -> None:
    """A submitted tune form: its command text, run with the uploaded file attached."""
    refused = error_reply(InvalidInput(problem)) if problem else upload_refusal(deps, uploads)
    if refused is not None:
        await respond(deps, interaction, refused, deferred=False)
        return
    caller = interaction_caller(interaction, deps.settings.discord_admin_role)

    async def work() -> Reply:
        try:
            files = tuple([Attachment(a.filename, await download(deps, a)) for a in uploads])
        except InvalidInput as exc:
            return error_reply(exc)
        ctx = Context(caller=caller, attachments=files,
                      origin=origin_of(caller, interaction=str(interaction.id)))
        return await deps.off_loop(deps.dispatcher.handle_text, text, ctx)

    await run_and_respond(deps, interaction, work())


async def run_text(deps: DiscordDeps, interaction: discord.Interaction, text: str) -> None:
    """A button press: its command text, run as if typed."""
    caller = interaction_caller(interaction, deps.settings.discord_admin_role)
    ctx = Context(caller=caller, origin=origin_of(caller, interaction=str(interaction.id)))
    await run_and_respond(deps, interaction, deps.off_loop(deps.dispatcher.handle_text, text, ctx))


async def run_and_respond(deps: DiscordDeps, interaction: discord.Interaction, work: Any) -> None:
    """Answer within Discord's 3 s: directly if `work` is done in time, else defer first."""
    if not await first_time(deps, f"discord:interaction:{interaction.id}"):
        work.close()  # another process answers this one
        return
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=deps.ack_within_s)
    deferred = not done
    if deferred:
        await interaction.response.defer(thinking=True)
    try:
        reply = await task
    except Exception as exc:  # a bug: the user must not be left with "thinking..."
        reply = unexpected(deps, exc)
    message = await respond(deps, interaction, reply, deferred=deferred)
    if reply.job_id is not None:
        private = private_place(interaction)
        channel = await interaction.user.create_dm() if private else channel_of(interaction)
        sink = DiscordJobSink(deps, asyncio.get_running_loop(), channel=channel,
                              interaction=interaction, started_at=_started(deps, interaction),
                              private=private, status_id=message.id if message else None)
        deps.watcher().follow(reply.job_id, sink)


def unexpected(deps: DiscordDeps, exc: BaseException) -> Reply:
    return unexpected_reply(deps.log, "a Discord command", exc)


def channel_of(interaction: discord.Interaction) -> Any:
    """Where fresh messages go once the interaction's own message cannot be edited."""
    channel = interaction.channel
    if channel is None or not hasattr(channel, "send"):
        channel = interaction.client.get_partial_messageable(interaction.channel_id or 0)
    return channel


def _started(deps: DiscordDeps, interaction: discord.Interaction) -> float:
    """The interaction's age on our clock (its token lives 15 minutes from creation)."""
    age = (discord.utils.utcnow() - interaction.created_at).total_seconds()
    return deps.clock() - max(0.0, age)


async def respond(deps: DiscordDeps, interaction: discord.Interaction, reply: Reply, *,
                  deferred: bool) -> discord.InteractionMessage | discord.WebhookMessage | None:
    """Post a Reply as the interaction's response; returns the message when it has one."""
    shown = render(reply)
    ephemeral = reply.ephemeral or reply.is_error or private_place(interaction)
    message: Any = None
    rated = {"view": rating_view()} if reply.message_id is not None and not ephemeral else {}
    if not deferred:
        sent = await interaction.response.send_message(ephemeral=ephemeral,
                                                       **{**shown.kwargs(), **rated})
        if not ephemeral:
            message = sent.resource if isinstance(sent.resource, discord.InteractionMessage) \
                else await interaction.original_response()
    elif ephemeral:  # a public "thinking..." cannot turn private: replace it
        await interaction.delete_original_response()
        await interaction.followup.send(ephemeral=True, **shown.kwargs())
    else:
        message = await interaction.edit_original_response(**{**shown.kwargs(edit=True),
                                                               **rated})
    for piece in shown.more:
        await interaction.followup.send(piece, ephemeral=ephemeral)
    if reply.message_id is not None and message is not None:
        await deps.off_loop(deps.dispatcher.answer_posted, reply.message_id, str(message.id))
    return message


async def model_choices(deps: DiscordDeps, interaction: discord.Interaction,
                        current: str) -> list[app_commands.Choice[str]]:
    """Model names for autocomplete: the catalog's search, as this caller sees it."""
    caller = interaction_caller(interaction, deps.settings.discord_admin_role)
    typed = (current or "").strip().lower()

    def names() -> list[str]:
        search = deps.engine.catalog.search
        everything = [c.name for c in search(caller, "", limit=AUTOCOMPLETE_SCAN)]
        found = sorted((n for n in everything if typed in n.lower()),
                       key=lambda n: (not n.lower().startswith(typed), n))
        if typed:  # words of descriptions and tags count too
            found += [c.name for c in search(caller, typed) if c.name not in found]
        return found

    try:
        found = await deps.off_loop(names)
    except Exception:  # autocomplete must never break typing; the command validates
        deps.log.exception("model autocomplete failed")
        return []
    return [app_commands.Choice(name=n, value=n) for n in found[:25]]


def upload_refusal(deps: DiscordDeps, uploads: list[discord.Attachment]) -> Reply | None:
    limit = deps.settings.max_upload_bytes
    for upload in uploads:
        if upload.size > limit:
            return error_reply(InvalidInput(
                f"{upload.filename} is {format_bytes(upload.size)}; the limit is "
                f"{format_bytes(limit)} (GPTSTORE_MAX_UPLOAD_MB). Split the file or trim it."))
    return None


async def download(deps: DiscordDeps, upload: discord.Attachment) -> bytes:
    """Fetch an attachment now (Discord's URLs expire), refusing files over the limit."""
    limit = deps.settings.max_upload_bytes
    try:
        data = await upload.read()
    except discord.HTTPException as exc:
        raise InvalidInput(f"Could not download {upload.filename} from Discord "
                           f"({exc.status}); attach it again.") from None
    if len(data) > limit:
        raise InvalidInput(f"{upload.filename} is {format_bytes(len(data))}; the limit is "
                           f"{format_bytes(limit)}.")
    return data
