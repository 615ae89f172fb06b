"""engine/settings.py: every numeric setting refused in one sentence naming its variable, and
URLs with passwords masked wherever settings are shown."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from engine.errors import InvalidInput
from engine.settings import NUMBERS, URL_FIELDS, MaskingFormatter, Settings, mask_url

HOME = {"GPTSTORE_HOME": "/tmp/gptstore-settings-test"}
PG = "postgresql+psycopg://gptstore:pg-Secret-1@db.internal:5432/store"
BROKER = "amqp://worker:amqp-Secret-2@rabbit.internal:5672//"
REDIS = "redis://:redis-Secret-3@127.0.0.1:6379/0"


def test_repr_masks_the_passwords_inside_urls() -> None:
    settings = Settings.from_env({**HOME, "DATABASE_URL": PG, "CELERY_BROKER_URL": BROKER,
                                  "GPTSTORE_JOBS": "celery"})
    for text in (repr(settings), str(settings), f"{settings}", repr(settings.with_(jobs="local")),
                 repr(settings.with_(celery_broker_url=REDIS))):
        assert "Secret" not in text, text
    shown = repr(settings)
    assert "postgresql+psycopg://gptstore:***@db.internal:5432/store" in shown
    assert "amqp://worker:***@rabbit.internal:5672//" in shown
    assert settings.database_url == PG  # the value itself is untouched: workers need it
    assert URL_FIELDS == {"database_url", "celery_broker_url"}


@pytest.mark.parametrize("url, shown", [
    (PG, "postgresql+psycopg://gptstore:***@db.internal:5432/store"),
    (REDIS, "redis://:***@127.0.0.1:6379/0"),
    ("postgresql://u:p@ss:w@rd@host/db", "postgresql://u:***@host/db"),
    ("sqlite:////home/me/.gptstore/store.db", "sqlite:////home/me/.gptstore/store.db"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
])
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_log_lines_and_tracebacks_mask_url_passwords(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    handler = logging.FileHandler(path)
    handler.setFormatter(MaskingFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("gptstore.test-masking")
    logger.addHandler(handler)
    try:
        logger.warning("cannot reach %s", BROKER)
        try:
            raise RuntimeError(f"connect failed: {PG}")
        except RuntimeError:
            logger.exception("bug")
    finally:
        logger.removeHandler(handler)
        handler.close()
    text = path.read_text()
    assert "Secret" not in text
    assert "amqp://worker:***@rabbit.internal" in text and "RuntimeError" in text


def test_an_infinite_upload_limit_is_one_sentence_not_a_traceback() -> None:
    with pytest.raises(InvalidInput) as refused:
        Settings.from_env({**HOME, "GPTSTORE_MAX_UPLOAD_MB": "inf"})
    message = str(refused.value)
    assert message.startswith("GPTSTORE_MAX_UPLOAD_MB must be a number of megabytes")
    assert "'inf'" in message and message.count(".") <= 3 and "\n" not in message


@pytest.mark.parametrize("number", NUMBERS, ids=lambda n: n.env)
@pytest.mark.parametrize("raw", ["inf", "-inf", "nan", "1e400", "lots", "-5", "1e12", "0x10"])
def test_every_numeric_setting_refuses_bad_values_naming_the_variable(number, raw: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        Settings.from_env({**HOME, number.env: raw})
    message = str(refused.value)
    assert message.startswith(f"{number.env} must be ") and repr(raw) in message
    assert "\n" not in message


@pytest.mark.parametrize("number", NUMBERS, ids=lambda n: n.env)
def test_every_numeric_setting_takes_its_default_and_its_bounds(number) -> None:
    default = getattr(Settings.from_env(HOME), number.field)
    assert default == type(default)(number.default * number.scale)
    for edge in (number.minimum, number.maximum):
        typed = str(int(edge)) if edge == int(edge) else str(edge)
        value = getattr(Settings.from_env({**HOME, number.env: typed}), number.field)
        assert value == pytest.approx(edge * number.scale, rel=1e-6, abs=1)


def test_whole_numbers_stay_whole() -> None:
    with pytest.raises(InvalidInput, match="GPTSTORE_QUEUE_SIZE must be a whole number"):
        Settings.from_env({**HOME, "GPTSTORE_QUEUE_SIZE": "2.5"})
    assert Settings.from_env({**HOME, "GPTSTORE_MAX_UPLOAD_MB": "2.5"}).max_upload_bytes == \
        int(2.5 * 1024 * 1024)
