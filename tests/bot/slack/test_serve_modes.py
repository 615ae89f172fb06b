"""`gptstore serve --slack` in each mode: one token, OAuth, and the settings it refuses in
one sentence naming the variables."""

from __future__ import annotations

import pytest

from bot.cli.serve import plan
from bot.slack.app import serve
from engine.errors import InvalidInput


@pytest.mark.parametrize("values, expected", [
    ({"slack_client_id": "1.2"}, "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET"),
    ({"slack_client_id": "1.2", "slack_client_secret": "s", "slack_app_token": "xapp-1"},
     "SLACK_SIGNING_SECRET"),
    ({"slack_signing_secret": "s"}, "SLACK_BOT_TOKEN"),
    ({"slack_bot_token": "xoxb-1"}, "SLACK_SIGNING_SECRET"),
])
def test_a_configuration_that_cannot_serve_is_refused_in_one_sentence(engine, settings, values,
                                                                    expected) -> None:
    with pytest.raises(InvalidInput) as refused:
        serve(engine, settings.with_(**values))
    assert expected in str(refused.value) and "xoxb-1" not in str(refused.value)


def test_oauth_credentials_alone_choose_slack(settings) -> None:
    oauth = settings.with_(slack_client_id="1.2", slack_client_secret="s",
                           slack_signing_secret="x")
    assert plan(oauth, slack=False, discord=False) == ["slack"]
    assert plan(oauth, slack=True, discord=False) == ["slack"]
    assert "slack_client_secret" not in repr(oauth)
