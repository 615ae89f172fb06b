"""`/store tune` without a file opens the tune form: a modal with the model's name, a file
upload (ui.FileUpload), the base, the optimizer and the other tune options; its submission
starts the same job the attachment option starts, and a bad setting is refused in one
sentence before anything is stored."""

from __future__ import annotations

import asyncio

from bot.core.progress import JobWatcher
from engine.identity import Caller
from tests.bot.discord.harness import EPHEMERAL, connected, qa_csv, response, text_of


def fields_of(modal: dict) -> dict[str, dict]:
    return {top["component"]["custom_id"]: dict(top["component"], label=top["label"])
            for top in modal["components"]}


def test_the_tune_form_takes_a_file_upload_and_the_tune_options(engine) -> None:
    async def scenario() -> None:
        watcher = lambda: JobWatcher(engine, poll_s=0.05, min_interval_s=0.0)  # noqa: E731
        async with connected(engine, watcher_factory=watcher) as (fake, _):
            synced = fake.find("PUT", f"/applications/{fake.app_id}/commands")[0].json
            tune = next(s for s in synced[0]["options"] if s["name"] == "tune")
            assert not any(o.get("required") for o in tune["options"])  # the form asks

            asked = await fake.slash(fake.admin, "tune", {"name": "faq-bot", "epochs": 1})
            modal = await fake.modal_of(asked)
            assert modal["title"] == "Fine-tune a model"
            fields = fields_of(modal)
            assert list(fields) == ["name", "file", "base", "optimizer", "settings"]
            assert fields["file"]["type"] == 19 and fields["file"]["required"]
            assert fields["file"]["label"] == "Q&A file"
            assert fields["name"]["value"] == "faq-bot"  # what was typed comes prefilled
            assert fields["settings"]["value"] == "epochs=1"
            assert [o["value"] for o in fields["optimizer"]["options"]] == ["adamw", "sgd"]

            upload = fake.add_file("faq.csv", qa_csv(12))
            submitted = await fake.submit(fake.admin, modal, {
                "name": "faq-bot", "base": "", "optimizer": ["sgd"],
                "settings": "epochs=1 batch_size=4"}, files={"file": [upload]})
            started = text_of(await response(fake, submitted))
            assert "tuning faq-bot" in started and "faq.csv" in started
            assert "optimizer=sgd" in started and "batch_size=4" in started
            assert upload["id"] in fake.downloads
            await fake.wait_for(lambda r: r.method == "POST" and bool(r.files)
                                and "finished: faq-bot v1" in text_of(r.json or {}),
                                timeout=600)
    asyncio.run(scenario())


def test_a_form_with_a_bad_setting_is_refused_in_one_sentence(engine) -> None:
    async def scenario() -> None:
        async with connected(engine) as (fake, _):
            modal = await fake.modal_of(await fake.slash(fake.admin, "tune", {}))
            assert "value" not in fields_of(modal)["name"]
            upload = fake.add_file("faq.csv", qa_csv(12))
            submitted = await fake.submit(fake.admin, modal, {
                "name": "faq-bot", "settings": "epochs=2 colour=red"}, files={"file": [upload]})
            shown = await response(fake, submitted)
            assert shown["flags"] & EPHEMERAL
            assert text_of(shown).startswith("'colour=red' is not a setting;")
            assert upload["id"] not in fake.downloads
            assert engine.jobs.list(Caller.console("admin")) == []
    asyncio.run(scenario())
