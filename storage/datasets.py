"""SQL for datasets and their examples: one dataset with all its examples in one transaction."""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import delete, func, insert
from sqlmodel import Session, select

from storage.tables import DatasetRecord, ExampleRecord

# One row of examples to insert: (split, position, messages, source)
ExampleRow = tuple[str, int, list[dict[str, Any]], str]


def insert_dataset(session: Session, dataset: DatasetRecord,
                   examples: Iterable[ExampleRow]) -> DatasetRecord:
    """Add the dataset and its examples; the caller's session commits both or neither."""
    session.add(dataset)
    session.flush()  # assigns dataset.id
    insert_examples(session, dataset.id, examples)
    return dataset


def insert_examples(session: Session, dataset_id: int, examples: Iterable[ExampleRow]) -> int:
    """Bulk insert (one executemany, not one ORM object per row: files hold thousands)."""
    rows = [{"dataset_id": dataset_id, "split": split, "position": position,
             "messages": messages, "source": source}
            for split, position, messages, source in examples]
    if rows:
        session.execute(insert(ExampleRecord), rows)
    return len(rows)


def get_dataset(session: Session, dataset_id: int) -> DatasetRecord | None:
    return session.get(DatasetRecord, dataset_id)


def list_examples(session: Session, dataset_id: int, split: str | None = None,
                  source: str | None = None) -> list[ExampleRecord]:
    query = select(ExampleRecord).where(ExampleRecord.dataset_id == dataset_id)
    if split is not None:
        query = query.where(ExampleRecord.split == split)
    if source is not None:
        query = query.where(ExampleRecord.source == source)
    return list(session.exec(query.order_by(ExampleRecord.id)))


def count_examples(session: Session, dataset_id: int) -> dict[str, int]:
    """{split: count} of a dataset's examples."""
    query = (select(ExampleRecord.split, func.count())
             .where(ExampleRecord.dataset_id == dataset_id).group_by(ExampleRecord.split))
    return {split: count for split, count in session.exec(query)}


def delete_dataset(session: Session, dataset_id: int) -> DatasetRecord | None:
    """Remove a dataset and its examples; returns the removed record (None if unknown)."""
    dataset = session.get(DatasetRecord, dataset_id)
    if dataset is None:
        return None
    session.execute(delete(ExampleRecord).where(ExampleRecord.dataset_id == dataset_id))
    session.delete(dataset)
    return dataset


def by_ids(session: Session, ids: Iterable[int]) -> list[DatasetRecord]:
    ids = list(ids)
    if not ids:
        return []
    return list(session.exec(select(DatasetRecord).where(DatasetRecord.id.in_(ids))
                             .order_by(DatasetRecord.id)))


def owned_by(session: Session, owner: str) -> list[DatasetRecord]:
    """The datasets (uploads) of one user, oldest first."""
    return list(session.exec(select(DatasetRecord).where(DatasetRecord.owner == owner)
                             .order_by(DatasetRecord.id)))


def set_example_count(session: Session, dataset: DatasetRecord, n_examples: int) -> None:
    dataset.n_examples = n_examples
    session.add(dataset)
