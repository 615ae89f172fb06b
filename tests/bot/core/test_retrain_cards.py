"""What a user reads about a retrain: the final reply (also what a schedule's channel is
told) lists every figure of the gate for both versions and why; `versions` shows what
trained each version and the figures that let it go live."""

from __future__ import annotations

from datetime import datetime, timezone

from bot.core.cards import card_reply, versions_reply
from bot.core.progress import final_reply
from engine.views import Figure, JobView, ModelCard, Origin, RetrainVerdict, VersionView, as_dict

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=timezone.utc)
FIGURES = [Figure("file recall", 0.70, 0.52, n=12, tolerance=0.05),
           Figure("earlier lessons", None, None),
           Figure("new pairs", 0.0, 0.61, n=3)]


def job(verdict: RetrainVerdict) -> JobView:
    return JobView(id=9, kind="retrain", state="succeeded", model_name="acme", base_name="tiny",
                   owner="u", workspace="w", progress=1.0, params={},
                   origin=Origin(scheduled=True), result=as_dict(verdict), error="",
                   created_at=NOW, started_at=NOW, finished_at=NOW)


def test_a_refused_retrain_says_each_figure_and_why() -> None:
    verdict = RetrainVerdict(promoted=False, reason="file recall fell from 0.70 to 0.52",
                             message="Kept version 1 of acme live: file recall fell.",
                             new_pairs=3, figures=[as_dict(f) for f in FIGURES],
                             file_examples=12, curated=3, previous_version=1)
    reply = final_reply(job(verdict))
    fields = dict(reply.fields)
    assert reply.title == "Job 9: acme kept its live version"
    assert fields["File recall"] == "live 0.70 / candidate 0.52 (may fall 0.05; 12 questions)"
    assert fields["New pairs"] == "live 0.00 / candidate 0.61 (3 questions)"
    assert "Earlier lessons" not in fields  # not measurable: not shown
    assert fields["Why"] == "file recall fell from 0.70 to 0.52"
    assert fields["Trained on"] == "12 file examples + 3 curated"


def test_versions_and_info_show_the_data_view_and_the_gates_figures() -> None:
    v1 = VersionView(number=1, status="retired", kind="adapter", created_at=NOW,
                     metrics_before={"token_f1": 0.1}, metrics_after={"token_f1": 0.6},
                     file_examples=12, curated=0)
    v2 = VersionView(number=2, status="live", kind="adapter", created_at=NOW,
                     metrics_after={"gate": [as_dict(f) for f in FIGURES]},
                     file_examples=12, curated=3)
    old = VersionView(number=3, status="retired", kind="adapter", created_at=NOW)
    rows = dict(versions_reply("acme", [v1, v2, old]).fields)
    assert "12 file examples + 0 curated." in rows["v1 (retired)"]
    assert "12 file examples + 3 curated." in rows["v2 (live)"]
    assert "file recall live 0.70 / candidate 0.52" in rows["v2 (live)"]
    assert "curated" not in rows["v3 (retired)"]  # recorded before data views existed
    card = ModelCard(name="acme", description="", tags=[], base="tiny", is_base=False,
                     owner="u", workspace="w", visibility="private", usage_count=0,
                     rating_up=0, rating_down=0, live_version=2, versions=[v1, v2])
    assert dict(card_reply(card).fields)["Trained on"] == "v2: 12 file examples + 3 curated"
