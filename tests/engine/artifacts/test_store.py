"""The artifact store: folders by content hash, read back on another "host" (another cache
folder on the same database), in the database (SQLite and PostgreSQL) and in an S3 bucket."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.artifacts.blobs import DatabaseBlobs, S3Blobs
from engine.artifacts.refs import is_ref, parse
from engine.artifacts.store import ArtifactStore
from engine.errors import ModelUnavailable
from engine.settings import Settings
from storage.db import Database
from tests.helpers.s3 import free_port, moto_s3


def clock() -> datetime:
    return datetime.now(timezone.utc)


def folder(tmp: Path, name: str = "adapter", big: bytes = b"") -> Path:
    out = tmp / name
    (out / "sub").mkdir(parents=True)
    (out / "adapter_config.json").write_text('{"r": 4}')
    (out / "sub" / "weights.bin").write_bytes(big or os.urandom(50_000))
    return out


def database(url: str) -> Database:
    db = Database(url)
    db.migrate()
    return db


def two_hosts(db: Database, tmp: Path, blobs_a, blobs_b=None):
    host_a = ArtifactStore(db, blobs_a, tmp / "a" / "cache", clock)
    host_b = ArtifactStore(db, blobs_b or blobs_a, tmp / "b" / "cache", clock)
    return host_a, host_b


def check_round_trip(host_a: ArtifactStore, host_b: ArtifactStore, tmp: Path) -> None:
    source = folder(tmp, big=os.urandom(300_000))
    expected = {p.relative_to(source).as_posix(): p.read_bytes()
                for p in source.rglob("*") if p.is_file()}
    ref = host_a.put_folder(source)
    assert is_ref(ref) and str(tmp) not in ref
    copy = host_b.local(ref)
    assert copy.is_dir() and not str(copy).startswith(str(tmp / "a"))
    got = {p.relative_to(copy).as_posix(): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert got == expected
    assert host_b.local(f"{ref}/adapter_config.json").read_text() == '{"r": 4}'
    assert host_a.put_folder(source) == ref  # same bytes, same name


def test_a_folder_stored_on_one_host_is_read_on_another(tmp_path: Path) -> None:
    db = database(f"sqlite:///{tmp_path / 'store.db'}")
    blobs = DatabaseBlobs(db, clock, chunk=64 * 1024)  # several chunks per file
    check_round_trip(*two_hosts(db, tmp_path, blobs), tmp_path)


@pytest.mark.postgres
def test_the_database_backend_works_the_same_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    db = database(pg_url)
    check_round_trip(*two_hosts(db, tmp_path, DatabaseBlobs(db, clock, chunk=64 * 1024)), tmp_path)


def test_an_s3_bucket_holds_the_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    db = database(f"sqlite:///{tmp_path / 'store.db'}")
    with moto_s3(tmp_path / "moto.log", monkeypatch) as endpoint:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="gptstore")
        settings = Settings.from_env({"GPTSTORE_HOME": str(tmp_path / "home"),
                                      "GPTSTORE_ARTIFACTS": "s3://gptstore/prod",
                                      "GPTSTORE_S3_ENDPOINT_URL": endpoint})
        host_a = ArtifactStore.open(settings, db, clock)
        host_b = ArtifactStore.open(settings.with_(home=tmp_path / "home-b"), db, clock)
        assert isinstance(host_a.blobs, S3Blobs)
        check_round_trip(host_a, host_b, tmp_path)
        keys = [o["Key"] for o in boto3.client("s3", endpoint_url=endpoint)
                .list_objects_v2(Bucket="gptstore")["Contents"]]
        assert keys and all(k.startswith("prod/blobs/") for k in keys)
        assert db.retrying(lambda s: s.exec(__import__("sqlmodel").text(
            "select count(*) from artifact_chunks")).one())[0] == 0  # no bytes in the database


def test_an_unreachable_bucket_says_what_to_check(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    db = database(f"sqlite:///{tmp_path / 'store.db'}")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, "x")
    blobs = S3Blobs("gptstore", endpoint_url=f"http://127.0.0.1:{free_port()}")
    store = ArtifactStore(db, blobs, tmp_path / "cache", clock)
    with pytest.raises(ModelUnavailable, match="cannot be reached.*GPTSTORE_ARTIFACTS"):
        store.put_folder(folder(tmp_path))


def test_damaged_bytes_are_refused_not_used(tmp_path: Path) -> None:
    db = database(f"sqlite:///{tmp_path / 'store.db'}")
    host_a, host_b = two_hosts(db, tmp_path, DatabaseBlobs(db, clock))
    ref = host_a.put_folder(folder(tmp_path))
    from sqlmodel import text

    db.retrying(lambda s: s.exec(text("update artifact_chunks set data = x'00'")))
    with pytest.raises(ModelUnavailable, match="damaged or incomplete"):
        host_b.local(ref)
    assert not (tmp_path / "b" / "cache" / "trees" / parse(ref).tree).exists()


def test_a_missing_tree_names_what_to_do(tmp_path: Path) -> None:
    db = database(f"sqlite:///{tmp_path / 'store.db'}")
    store = ArtifactStore(db, DatabaseBlobs(db, clock), tmp_path / "cache", clock)
    with pytest.raises(ModelUnavailable, match="retrain the model or roll back"):
        store.local("artifact:" + "0" * 64)


def test_clean_up_keeps_what_is_named_and_drops_the_rest(tmp_path: Path) -> None:
    db = database(f"sqlite:///{tmp_path / 'store.db'}")
    now = {"t": datetime(2026, 1, 1, tzinfo=timezone.utc)}
    store = ArtifactStore(db, DatabaseBlobs(db, lambda: now["t"]), tmp_path / "cache",
                          lambda: now["t"])
    kept = store.put_folder(folder(tmp_path, "kept"))
    dropped = store.put_folder(folder(tmp_path, "dropped"))
    assert store.collect([kept]) == 0  # both younger than an hour: an upload may be going on
    now["t"] += timedelta(hours=2)
    assert store.collect([kept]) == 1  # dropped's random weights; the config is shared
    other = ArtifactStore(db, store.blobs, tmp_path / "other", lambda: now["t"])
    assert (other.local(kept) / "sub" / "weights.bin").is_file()
    with pytest.raises(ModelUnavailable):
        other.local(dropped)


def test_forgetting_a_checkpoint_keeps_the_files_other_trees_use(tmp_path: Path) -> None:
    db = database(f"sqlite:///{tmp_path / 'store.db'}")
    store = ArtifactStore(db, DatabaseBlobs(db, clock), tmp_path / "cache", clock)
    old = folder(tmp_path, "step-1")
    new = tmp_path / "step-2"
    (new / "sub").mkdir(parents=True)
    (new / "adapter_config.json").write_text('{"r": 4}')  # the same bytes as step 1's
    (new / "sub" / "weights.bin").write_bytes(os.urandom(1000))
    old_ref, new_ref = store.put_folder(old), store.put_folder(new)
    assert store.forget(old_ref) == 1  # only step 1's own weights
    other = ArtifactStore(db, store.blobs, tmp_path / "other", clock)
    assert (other.local(new_ref) / "adapter_config.json").read_text() == '{"r": 4}'
    with pytest.raises(ModelUnavailable):
        other.local(old_ref)
