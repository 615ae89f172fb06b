"""Datasets: dry runs store nothing, stores are all-or-nothing, examples come back by split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.datasets.service import Datasets
from engine.errors import DatasetInvalid, InvalidInput, NotFound
from engine.identity import Caller
from engine.settings import Settings
from storage.db import Database
from tests.helpers.qa import DATA, fixed_clock, open_datasets, qa_csv, stored

ALICE = Caller(platform="slack", workspace="slack:T1", user="slack:T1:U1")


@pytest.fixture
def datasets(settings: Settings, tmp_path: Path) -> Datasets:
    return open_datasets(settings, tmp_path)


def test_inspect_reports_the_split_and_stores_nothing(datasets: Datasets) -> None:
    report = datasets.inspect(ALICE, "faq.csv", qa_csv(40))
    assert (report.format, report.n_examples, report.dataset_id) == ("csv", 40, None)
    assert report.split_sizes == {"train": 32, "validation": 4, "test": 4}
    assert stored(datasets) == (0, 0, [])


def test_store_keeps_examples_by_split_and_a_copy_of_the_upload(datasets: Datasets) -> None:
    data = qa_csv(20)
    report = datasets.store(ALICE, "faq.csv", data)
    assert report.dataset_id is not None and report.split_sizes == {
        "train": 16, "validation": 2, "test": 2}
    n_datasets, n_examples, files = stored(datasets)
    assert (n_datasets, n_examples) == (1, 20)
    assert len(files) == 1 and files[0].endswith("-faq.csv")
    assert (datasets.settings.uploads_dir / files[0]).read_bytes() == data
    train = datasets.examples(report.dataset_id, "train")
    test = datasets.examples(report.dataset_id, "test")
    assert len(train) == 16 and len(test) == 2
    everything = datasets.examples(report.dataset_id)
    assert everything[0] == [{"role": "user", "content": "How do I do task 0?"},
                             {"role": "assistant", "content": "Open menu 0 and press Go 0."}]
    assert datasets.report(report.dataset_id).split_sizes == report.split_sizes


def test_the_split_is_the_same_for_the_same_seed(datasets: Datasets) -> None:
    first = datasets.store(ALICE, "faq.csv", qa_csv(30), seed=4)
    second = datasets.store(ALICE, "faq.csv", qa_csv(30), seed=4)
    assert datasets.examples(first.dataset_id, "test") == datasets.examples(
        second.dataset_id, "test")


def test_a_refused_file_leaves_nothing_behind(datasets: Datasets) -> None:
    with pytest.raises(DatasetInvalid):
        datasets.store(ALICE, "faq.csv", qa_csv(5))
    assert stored(datasets) == (0, 0, [])


def test_a_database_failure_leaves_no_file_behind(settings: Settings, tmp_path: Path) -> None:
    broken = Datasets(Database(f"sqlite:///{tmp_path}/empty.db"), settings,
                      fixed_clock)  # no tables: the insert fails
    with pytest.raises(Exception):
        broken.store(ALICE, "faq.csv", qa_csv(20))
    assert list(settings.uploads_dir.iterdir()) == []


def test_separate_validation_file(datasets: Datasets) -> None:
    validation = ("val.jsonl", "\n".join(json.dumps({"question": f"Extra {i}?", "answer": f"Yes {i}."})
                                         for i in range(3)).encode())
    report = datasets.store(ALICE, "faq.csv", qa_csv(20), validation)
    assert report.split_sizes == {"train": 18, "validation": 3, "test": 2}
    assert report.n_examples == 23
    assert datasets.examples(report.dataset_id, "validation")[0][0]["content"] == "Extra 0?"
    assert len(stored(datasets)[2]) == 2  # both uploads kept


def test_problems_of_both_files_are_reported_together(datasets: Datasets) -> None:
    with pytest.raises(DatasetInvalid) as caught:
        datasets.store(ALICE, "faq.csv", qa_csv(4), ("val.csv", b"foo,bar\n1,2\n"))
    problems = caught.value.problems
    assert problems[0].startswith("only 4 usable example(s)")
    assert problems[1].startswith("validation file val.csv: row 1: no question and no answer")
    assert stored(datasets) == (0, 0, [])


def test_validation_examples_that_repeat_training_ones_are_warned_about(
        datasets: Datasets) -> None:
    report = datasets.inspect(ALICE, "faq.csv", qa_csv(20), ("val.csv", qa_csv(2)))
    assert any("also appear in the main file" in w for w in report.warnings)


def test_multi_turn_chats_are_counted(datasets: Datasets) -> None:
    report = datasets.store(ALICE, "chat.jsonl", (DATA / "chat_openai.jsonl").read_bytes())
    assert report.n_multi_turn == 1 and report.format == "openai"


def test_add_examples_for_retraining(datasets: Datasets) -> None:
    dataset_id = datasets.store(ALICE, "faq.csv", qa_csv(10)).dataset_id
    added = datasets.add_examples(dataset_id, [
        ("What is the refund window?", "14 days for yearly plans."),
        [{"role": "user", "content": "How do I do task 1?"},
         {"role": "assistant", "content": "Open menu 1 and press Go 1."}],  # already there
    ], "correction")
    assert added == 1
    train = datasets.examples(dataset_id, "train")
    assert train[-1][1]["content"] == "14 days for yearly plans."
    assert datasets.report(dataset_id).n_examples == 11
    with pytest.raises(InvalidInput):
        datasets.add_examples(dataset_id, [("Question?", "  ")], "feedback")
    with pytest.raises(InvalidInput):
        datasets.add_examples(dataset_id, [("Q?", "A.")], "rumour")


def test_delete_removes_examples_and_files(datasets: Datasets) -> None:
    dataset_id = datasets.store(ALICE, "faq.csv", qa_csv(10), ("v.csv", qa_csv(2, start=50)))
    dataset_id = dataset_id.dataset_id
    keep = datasets.store(ALICE, "other.csv", qa_csv(10)).dataset_id
    datasets.delete(dataset_id)
    with pytest.raises(NotFound):
        datasets.examples(dataset_id)
    n_datasets, n_examples, files = stored(datasets)
    assert (n_datasets, n_examples) == (1, 10) and len(files) == 1
    assert len(datasets.examples(keep)) == 10


def test_unknown_dataset_and_split(datasets: Datasets) -> None:
    with pytest.raises(NotFound, match="no dataset 99"):
        datasets.examples(99)
    with pytest.raises(InvalidInput, match="Unknown split"):
        datasets.examples(1, "holdout")


def test_a_hostile_file_name_stays_in_the_uploads_folder(datasets: Datasets) -> None:
    datasets.store(ALICE, "../../../etc/passwd.csv", qa_csv(10))
    files = stored(datasets)[2]
    assert len(files) == 1 and files[0].endswith("-passwd.csv")


def test_store_on_postgresql(pg_url: str, settings: Settings) -> None:
    db = Database(pg_url)
    db.migrate()
    datasets = Datasets(db, settings, fixed_clock)
    report = datasets.store(ALICE, "faq.csv", qa_csv(20))
    assert len(datasets.examples(report.dataset_id, "train")) == 16
    with pytest.raises(DatasetInvalid):
        datasets.store(ALICE, "faq.csv", qa_csv(3))
    assert stored(datasets)[:2] == (1, 20)
    db.close()


def test_a_validation_file_given_as_bytes_takes_the_main_files_kind(datasets: Datasets) -> None:
    report = datasets.inspect(ALICE, "faq.csv", qa_csv(20), qa_csv(3, start=100))
    assert report.split_sizes == {"train": 18, "validation": 3, "test": 2}
