"""Q&A datasets in the store: validate an upload (dry run) or keep it with its split examples,
atomically, and hand examples to training and retraining."""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.datasets.files import MAX_EXAMPLE_TOKENS, ParsedFile, parse
from engine.datasets.splits import split
from engine.errors import DatasetInvalid, InvalidInput, NotFound
from engine.identity import Caller
from engine.settings import Settings
from engine.views import DatasetReport
from storage import datasets as rows
from storage.db import Database
from storage.tables import DatasetRecord

Upload = tuple[str, bytes]  # (file name, contents)


@dataclass(frozen=True)
class ForgottenUpload:
    """One upload that forget-me deleted: its file name, examples and stored copies."""

    name: str
    examples: int
    files: int



Pair = tuple[str, str] | Sequence[dict[str, str]]  # (question, answer) or a messages list
SOURCES = ("file", "feedback", "correction", "gap")  # gap: an answered gap (/store answer)
SPLITS = ("train", "validation", "test")


class Datasets:
    """Validation and storage of uploaded Q&A files."""

    def __init__(self, db: Database, settings: Settings, clock: Callable[[], datetime], *,
                 max_tokens: int = MAX_EXAMPLE_TOKENS) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.max_tokens = max_tokens  # longer examples are warned about (training truncates)

    def inspect(self, caller: Caller, filename: str, data: bytes,
                validation: Upload | bytes | None = None, *, seed: int = 0) -> DatasetReport:
        """What `tune --dry-run` shows: examples, split and warnings. Stores nothing."""
        plan = self._plan(filename, data, validation, seed)
        return plan.report(filename)

    def store(self, caller: Caller, filename: str, data: bytes,
              validation: Upload | bytes | None = None, model_id: int | None = None, *,
              seed: int = 0) -> DatasetReport:
        """Validate, then keep the upload's copy and its examples: all of it, or nothing."""
        plan = self._plan(filename, data, validation, seed)
        folder = self.settings.uploads_dir
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(data).hexdigest()
        stem = f"{self.clock():%Y%m%d-%H%M%S}-{digest[:8]}{uuid.uuid4().hex[:6]}"
        copies = [(folder / f"{stem}-{_safe_name(filename)}", data)]
        if plan.validation_file is not None:
            vname, vdata = plan.validation_file
            copies.append((folder / f"{stem}-validation-{_safe_name(vname)}", vdata))
        partials: list[tuple[Path, Path]] = []
        try:
            for final, content in copies:
                partials.append((_write_partial(folder, content), final))
            record = DatasetRecord(
                name=filename[:256], format=plan.parsed.format, owner=caller.user,
                workspace=caller.workspace, model_id=model_id, path=str(copies[0][0]),
                sha256=digest, n_examples=len(plan.rows), warnings=plan.warnings,
                created_at=self.clock())
            with self.db.session() as session:
                rows.insert_dataset(session, record, plan.rows)
        except BaseException:
            for partial, _ in partials:
                partial.unlink(missing_ok=True)
            raise
        try:
            for partial, final in partials:
                os.replace(partial, final)
        except OSError as exc:
            for partial, final in partials:
                partial.unlink(missing_ok=True)
                final.unlink(missing_ok=True)
            self._delete_record(record.id)
            raise InvalidInput(f"Could not keep a copy of {filename} in {folder} "
                               f"({exc.strerror or exc}); check that the folder is writable "
                               "and has space, then upload again.") from None
        return plan.report(filename, record.id)

    def examples(self, dataset_id: int, split: str | None = None) -> list[list[dict[str, Any]]]:
        """The messages lists of a dataset's examples, in file order (curated ones last)."""
        if split is not None and split not in SPLITS:
            raise InvalidInput(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
        with self.db.session() as session:
            self._get(session, dataset_id)
            found = rows.list_examples(session, dataset_id, split)
        return [list(example.messages) for example in found]

    def file_rows(self, dataset_id: int) -> list[tuple[str, int, list[dict[str, Any]]]]:
        """(split, row or line number, messages) of each example that came from the uploaded
        files (curated ones left out), in file order: what a tune indexes and cites."""
        with self.db.session() as session:
            self._get(session, dataset_id)
            found = rows.list_examples(session, dataset_id, source="file")
        return [(e.split, e.position, list(e.messages)) for e in found]

    def report(self, dataset_id: int) -> DatasetReport:
        """The stored dataset's summary, as `store` returned it."""
        with self.db.session() as session:
            record = self._get(session, dataset_id)
            sizes = rows.count_examples(session, dataset_id)
            found = rows.list_examples(session, dataset_id)
        return DatasetReport(
            filename=record.name, format=record.format, n_examples=record.n_examples,
            n_multi_turn=sum(1 for e in found if _multi_turn(e.messages)),
            split_sizes={name: sizes.get(name, 0) for name in SPLITS},
            warnings=list(record.warnings or []), dataset_id=record.id)

    def add_examples(self, dataset_id: int, pairs: Iterable[Pair], source: str) -> int:
        """Add curated training examples (feedback, corrections) to a dataset; exact
        repeats of examples it already holds are skipped. Returns how many were added."""
        if source not in SOURCES:
            raise InvalidInput(f"Unknown example source {source!r}; use one of "
                               f"{', '.join(SOURCES)}.")
        new = [_as_messages(pair) for pair in pairs]
        with self.db.session() as session:
            record = self._get(session, dataset_id)
            existing = rows.list_examples(session, dataset_id)
            seen = {_key(e.messages) for e in existing}
            position = max((e.position for e in existing), default=0)
            added = []
            for messages in new:
                if _key(messages) not in seen:
                    seen.add(_key(messages))
                    position += 1
                    added.append(("train", position, messages, source))
            rows.insert_examples(session, dataset_id, added)
            rows.set_example_count(session, record, record.n_examples + len(added))
        return len(added)

    def delete(self, dataset_id: int) -> int:
        """Remove a dataset, its examples and its upload copies; returns the files removed."""
        with self.db.session() as session:
            record = self._get(session, dataset_id)
            path = Path(record.path) if record.path else None
            rows.delete_dataset(session, dataset_id)
        if path is None:
            return 0
        copies = [path]
        stem = path.name.split("-", 3)
        if len(stem) == 4:  # the validation file's copy, if one came with it
            copies += path.parent.glob(f"{stem[0]}-{stem[1]}-{stem[2]}-validation-*")
        removed = 0
        for copy in copies:
            if copy.exists():
                copy.unlink()
                removed += 1
        return removed

    def forget_owner(self, owner: str, keep: set[int]) -> list[ForgottenUpload]:
        """Delete every dataset `owner` uploaded (examples and stored copies) but those in
        `keep` (still used by an unfinished job); what went, oldest first."""
        with self.db.session() as session:
            owned = [(d.id, d.name, d.n_examples) for d in rows.owned_by(session, owner)]
        gone = []
        for dataset_id, name, examples in owned:
            if dataset_id not in keep:
                files = self.delete(dataset_id)
                gone.append(ForgottenUpload(name=name, examples=examples, files=files))
        return gone

    def _delete_record(self, dataset_id: int | None) -> None:
        if dataset_id is not None:
            with self.db.session() as session:
                rows.delete_dataset(session, dataset_id)

    def _get(self, session: Any, dataset_id: int) -> DatasetRecord:
        record = rows.get_dataset(session, dataset_id)
        if record is None:
            raise NotFound(f"There is no dataset {dataset_id}; it may have been deleted. "
                           "Upload the Q&A file again.")
        return record

    def _plan(self, filename: str, data: bytes, validation: Upload | bytes | None,
              seed: int) -> "_Plan":
        """Parse both files, reporting the problems of both at once, and split."""
        limit = self.settings.max_upload_bytes
        main_error = validation_error = None
        parsed = checked = None
        try:
            parsed = parse(filename, data, max_bytes=limit, max_tokens=self.max_tokens)
        except DatasetInvalid as exc:
            main_error = exc
        vfile: Upload | None = None
        if validation is not None:
            vfile = validation if isinstance(validation, tuple) else (
                "validation" + Path(filename).suffix, validation)
            try:
                checked = parse(vfile[0], vfile[1], max_bytes=limit, min_examples=1,
                                max_tokens=self.max_tokens)
            except DatasetInvalid as exc:
                validation_error = exc
        if validation_error is None:
            if main_error is not None:
                raise main_error
            return _Plan(parsed, checked, vfile, seed)
        assert vfile is not None
        problems = [f"validation file {vfile[0]}: {p}"
                    for p in (validation_error.problems or [validation_error.summary])]
        if main_error is None:
            raise DatasetInvalid(f"The validation file has problems to fix: "
                                 f"{validation_error.summary}", problems)
        raise DatasetInvalid(
            f"Both {filename} and the validation file {vfile[0]} have problems to fix.",
            (main_error.problems or [main_error.summary]) + problems)


class _Plan:
    """A validated upload, split: the rows to store and the report to show."""

    def __init__(self, parsed: ParsedFile, validation: ParsedFile | None,
                 validation_file: Upload | None, seed: int) -> None:
        self.parsed = parsed
        self.validation_file = validation_file
        held = None if validation is None else len(validation.examples)
        parts = split(len(parsed.examples), seed=seed, validation=held)
        where = {index: name for name, indices in parts.items() for index in indices}
        self.rows = [(where[i], e.position, e.messages, "file")
                     for i, e in enumerate(parsed.examples)]
        self.sizes = {name: len(indices) for name, indices in parts.items()}
        self.warnings = list(parsed.warnings)
        self.n_multi_turn = sum(1 for e in parsed.examples if _multi_turn(e.messages))
        if validation is not None and validation_file is not None:
            vname = validation_file[0]
            self.warnings += [f"validation file {vname}: {w}" for w in validation.warnings]
            trained = {_key(e.messages) for e in parsed.examples}
            repeats = [e.position for e in validation.examples if _key(e.messages) in trained]
            if repeats:
                self.warnings.append(
                    f"validation file {vname}: {len(repeats)} example(s) (first at "
                    f"{repeats[0]}) also appear in the main file, so the "
                    "validation loss will look better than it is.")
            self.rows += [("validation", e.position, e.messages, "file")
                          for e in validation.examples]
            self.sizes["validation"] = len(validation.examples)
            self.n_multi_turn += sum(1 for e in validation.examples if _multi_turn(e.messages))

    def report(self, filename: str, dataset_id: int | None = None) -> DatasetReport:
        return DatasetReport(filename=filename, format=self.parsed.format,
                             n_examples=len(self.rows), n_multi_turn=self.n_multi_turn,
                             split_sizes=dict(self.sizes), warnings=list(self.warnings),
                             dataset_id=dataset_id)


def _as_messages(pair: Pair) -> list[dict[str, str]]:
    if isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(p, str) for p in pair):
        messages = [{"role": "user", "content": pair[0].strip()},
                    {"role": "assistant", "content": pair[1].strip()}]
    else:
        messages = [{"role": str(m.get("role", "")), "content": str(m.get("content", "")).strip()}
                    for m in pair]
    roles = [m["role"] for m in messages]
    if (not messages or any(not m["content"] for m in messages) or roles[-1] != "assistant"
            or "user" not in roles or set(roles) - {"user", "assistant", "system"}):
        raise InvalidInput("A curated example needs a question and a non-empty answer "
                           "(user then assistant messages).")
    return messages


def _key(messages: Sequence[dict[str, Any]]) -> tuple:
    return tuple((m["role"], " ".join(str(m["content"]).split()).casefold()) for m in messages)


def _multi_turn(messages: Sequence[dict[str, Any]]) -> bool:
    return sum(1 for m in messages if m.get("role") == "user") > 1


def _safe_name(filename: str) -> str:
    """The upload's base name, with anything but letters, digits, dot, dash and underscore
    replaced: names come from chat users and must not climb out of the uploads folder."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename.replace("\\", "/")).name)
    return base.lstrip(".")[-100:] or "upload"


def _write_partial(folder: Path, content: bytes) -> Path:
    partial = folder / f".partial-{uuid.uuid4().hex}"
    partial.write_bytes(content)
    return partial
