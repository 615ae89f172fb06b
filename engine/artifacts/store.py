"""ArtifactStore: folders in, folders out, on any host.

    ref = artifacts.put_folder(adapter_folder)   # "artifact:<sha256>"
    folder = artifacts.local(ref)                 # this host's cached copy, fetched once

A folder becomes a tree: a manifest of relative path -> (sha256, size), whose own SHA-256
names it. Blobs are written first and the tree last, so a tree that exists is complete.
The cache (`GPTSTORE_HOME/cache/trees/<sha256>`) is filled through a temporary folder and a
rename, so a half-fetched copy is never used; being named by content, it never goes stale.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from engine.artifacts.blobs import Blobs, copy_blob, file_sha256, make_blobs
from engine.artifacts.refs import Ref, is_ref, parse
from engine.errors import ModelUnavailable
from engine.settings import Settings
from storage import artifacts as store
from storage.db import Database

Clock = Callable[[], datetime]


class ArtifactStore:
    def __init__(self, db: Database, blobs: Blobs, cache_dir: Path, clock: Clock) -> None:
        self.db, self.blobs, self.cache_dir, self.clock = db, blobs, Path(cache_dir), clock

    @classmethod
    def open(cls, settings: Settings, db: Database, clock: Clock) -> "ArtifactStore":
        return cls(db, make_blobs(settings, db, clock), settings.cache_dir, clock)

    # -- writing ------------------------------------------------------------------------

    def put_folder(self, folder: Path, *, move: bool = False) -> str:
        """Store every file under `folder`; returns the tree's reference. With move=True the
        folder becomes this host's cached copy (no second copy on disk)."""
        folder = Path(folder)
        files: dict[str, dict[str, Any]] = {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = path.relative_to(folder).as_posix()
            digest = file_sha256(path)
            if not self.blobs.has(digest):
                self.blobs.put(digest, path)
            files[relative] = {"sha256": digest, "size": path.stat().st_size}
        manifest = {"files": files}
        tree = hashlib.sha256(_canonical(manifest)).hexdigest()
        size = sum(f["size"] for f in files.values())
        self.db.retrying(lambda s: store.insert_tree(s, tree, manifest, size, self.clock()))
        if move:
            self._adopt(folder, tree)
        return str(Ref(tree))

    def _adopt(self, folder: Path, tree: str) -> None:
        target = self._tree_dir(tree)
        if target.exists():
            shutil.rmtree(folder, ignore_errors=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.rename(target)
        except OSError:  # another filesystem, or another process won: copy instead
            if not target.exists():
                self._fetch(tree)
            shutil.rmtree(folder, ignore_errors=True)

    # -- reading ------------------------------------------------------------------------

    def local(self, location: str) -> Path:
        """A folder or file on this host for `location`: an artifact reference is fetched
        into the cache once; any other location (an older store's path) is returned as is."""
        if not is_ref(location):
            return Path(location)
        ref = parse(location)
        folder = self._tree_dir(ref.tree)
        if not folder.is_dir():
            self._fetch(ref.tree)
        return folder / ref.path if ref.path else folder

    def restore(self, location: str, target: Path) -> None:
        """Make `target` a writable copy of the tree (a checkpoint a job goes on writing to)."""
        source = self.local(location)
        temporary = target.with_name(f".{target.name}.restore-{uuid.uuid4().hex[:8]}")
        shutil.copytree(source, temporary)
        if target.exists():
            shutil.rmtree(target)
        temporary.rename(target)

    def manifest(self, location: str) -> dict[str, Any]:
        record = self.db.retrying(lambda s: store.get_tree(s, parse(location).tree))
        if record is None:
            raise ModelUnavailable(f"The artifact {location} is not in the store.")
        return dict(record.manifest or {})

    def _tree_dir(self, tree: str) -> Path:
        return self.cache_dir / "trees" / tree

    def _fetch(self, tree: str) -> None:
        record = self.db.retrying(lambda s: store.get_tree(s, tree))
        if record is None:
            raise ModelUnavailable(
                f"The stored files {tree[:12]} are missing from the artifact store; retrain the "
                "model or roll back to another version (`/store versions MODEL`).")
        target = self._tree_dir(tree)
        temporary = target.parent / f".{tree}.part-{uuid.uuid4().hex[:8]}"
        temporary.mkdir(parents=True)
        try:
            for relative, entry in (record.manifest or {}).get("files", {}).items():
                path = temporary / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                copy_blob(self.blobs, entry["sha256"], path)
            try:
                temporary.rename(target)
            except OSError:  # another thread of this host fetched it first
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(temporary, ignore_errors=True)

    # -- clean-up -----------------------------------------------------------------------

    def forget(self, location: str) -> int:
        """Delete a tree nothing needs any more (a job's previous checkpoint) and those of its
        blobs no other tree uses; returns the blobs deleted. Blobs shared with another tree
        stay, so a version's or another job's files are never touched."""
        if not is_ref(location):
            return 0
        tree = parse(location).tree
        record = self.db.retrying(lambda s: store.get_tree(s, tree))
        if record is None:
            return 0
        self.db.retrying(lambda s: store.delete_tree(s, tree))
        mine = {f["sha256"] for f in (record.manifest or {}).get("files", {}).values()}
        for other in self.db.retrying(store.trees):
            mine -= {f["sha256"] for f in (other.manifest or {}).get("files", {}).values()}
        for digest in mine:
            self.blobs.delete(digest)
        shutil.rmtree(self._tree_dir(tree), ignore_errors=True)
        return len(mine)

    def collect(self, keep: Iterable[str], *, older_than: timedelta = timedelta(hours=1)) -> int:
        """Delete trees not named in `keep` and blobs no kept tree uses, if older than
        `older_than` (an upload in progress is younger). Returns the blobs deleted."""
        cutoff = self.clock() - older_than
        kept = {parse(k).tree for k in keep if is_ref(k)}
        used: set[str] = set()
        doomed: list[str] = []
        for record in self.db.retrying(store.trees):
            if record.sha256 in kept or _aware(record.created_at) >= cutoff:
                used |= {f["sha256"] for f in (record.manifest or {}).get("files", {}).values()}
            else:
                doomed.append(record.sha256)
        for tree in doomed:
            self.db.retrying(lambda s: store.delete_tree(s, tree))
        deleted = 0
        for digest in self.blobs.older_than(cutoff):
            if digest not in used:
                self.blobs.delete(digest)
                deleted += 1
        return deleted


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; every one the store writes is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
