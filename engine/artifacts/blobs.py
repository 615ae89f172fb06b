"""Where an artifact's bytes live: rows in chunks in the store's own database (the default,
the same on SQLite and PostgreSQL), or an S3-compatible bucket (GPTSTORE_ARTIFACTS=s3://...,
through boto3). A blob is named by the SHA-256 of its bytes, so writing one twice is free and
two hosts writing the same one at once agree."""

from __future__ import annotations

import hashlib
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Protocol

from sqlalchemy.exc import IntegrityError

from engine.errors import ModelUnavailable
from engine.settings import Settings
from storage import artifacts as store
from storage.db import Database

CHUNK = 1024 * 1024  # 1 MiB rows: small enough for any database, few enough to be quick


class Blobs(Protocol):
    def has(self, sha256: str) -> bool: ...
    def put(self, sha256: str, source: Path) -> None: ...
    def get(self, sha256: str, target: Path) -> None: ...
    def delete(self, sha256: str) -> None: ...
    def older_than(self, cutoff: datetime) -> list[str]: ...


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for piece in iter(lambda: handle.read(CHUNK), b""):
            digest.update(piece)
    return digest.hexdigest()


class DatabaseBlobs:
    """Blobs as rows of CHUNK bytes; a blob row and all its chunks commit together."""

    def __init__(self, db: Database, clock: Any, *, chunk: int = CHUNK) -> None:
        self.db, self.clock, self.chunk = db, clock, chunk

    def has(self, sha256: str) -> bool:
        return bool(self.db.retrying(lambda s: store.has_blob(s, sha256)))

    def put(self, sha256: str, source: Path) -> None:
        size = source.stat().st_size

        def pieces() -> Iterator[bytes]:
            with open(source, "rb") as handle:
                for piece in iter(lambda: handle.read(self.chunk), b""):
                    yield piece

        try:
            self.db.retrying(lambda s: store.insert_blob(s, sha256, size, pieces(), self.clock()))
        except IntegrityError:
            pass  # another host stored the same bytes a moment ago

    def get(self, sha256: str, target: Path) -> None:
        count = self.db.retrying(lambda s: store.chunk_count(s, sha256))
        with open(target, "wb") as out:
            for seq in range(count):
                data = self.db.retrying(lambda s: store.chunk(s, sha256, seq))
                if data is None:
                    break
                out.write(data)

    def delete(self, sha256: str) -> None:
        self.db.retrying(lambda s: store.delete_blob(s, sha256))

    def older_than(self, cutoff: datetime) -> list[str]:
        return self.db.retrying(lambda s: store.blob_hashes(s, cutoff))


class S3Blobs:
    """Blobs as objects `<prefix>blobs/<sha256>` in a bucket. Credentials and region come from
    boto3's usual chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, a
    profile or an instance role); GPTSTORE_S3_ENDPOINT_URL points at MinIO, Ceph or R2."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 client: Any = None) -> None:
        self.bucket, self.prefix = bucket, (prefix.strip("/") + "/") if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3", endpoint_url=self.endpoint_url)
        return self._client

    def key(self, sha256: str) -> str:
        return f"{self.prefix}blobs/{sha256}"

    def has(self, sha256: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._unavailable(exc) from None
        except BotoCoreError as exc:
            raise self._unavailable(exc) from None

    def put(self, sha256: str, source: Path) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.upload_file(str(source), self.bucket, self.key(sha256))
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable(exc) from None

    def get(self, sha256: str, target: Path) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.download_file(self.bucket, self.key(sha256), str(target))
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable(exc) from None

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))

    def older_than(self, cutoff: datetime) -> list[str]:
        found = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}blobs/")
        for page in pages:
            for item in page.get("Contents", []):
                if item["LastModified"] < cutoff:
                    found.append(item["Key"].rsplit("/", 1)[-1])
        return found

    def _unavailable(self, exc: Exception) -> ModelUnavailable:
        return ModelUnavailable(
            f"The artifact bucket s3://{self.bucket}/{self.prefix} cannot be reached ({exc}); "
            "check GPTSTORE_ARTIFACTS, GPTSTORE_S3_ENDPOINT_URL and the AWS credentials.")


def make_blobs(settings: Settings, db: Database, clock: Any) -> Blobs:
    """The backend GPTSTORE_ARTIFACTS names: `database` (default) or `s3://bucket/prefix`."""
    if settings.artifacts.startswith("s3://"):
        bucket, _, prefix = settings.artifacts[len("s3://"):].partition("/")
        return S3Blobs(bucket, prefix, endpoint_url=settings.s3_endpoint_url)
    return DatabaseBlobs(db, clock)


def copy_blob(blobs: Blobs, sha256: str, target: Path) -> None:
    """Fetch a blob into `target`, checking that the bytes are the ones named."""
    temporary = target.with_name(target.name + ".part")
    blobs.get(sha256, temporary)
    if file_sha256(temporary) != sha256:
        temporary.unlink(missing_ok=True)
        raise ModelUnavailable(f"The stored artifact {sha256[:12]} is damaged or incomplete; "
                               "store it again (retrain, or `gptstore models add` once more).")
    shutil.move(str(temporary), target)
