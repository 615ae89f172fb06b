"""Forget-me: delete what the store holds of one user, say exactly what went and what cannot
be undone, and give the space back so no copy stays in the database file.

One platform identity at a time ("slack:T1:U1" is not "discord:42": the store links no
identities across platforms), so the reply says which account it covered.
"""

from __future__ import annotations

from engine.chat import ChatService
from engine.datasets.service import Datasets
from engine.identity import Caller
from engine.views import ForgetReport
from storage import catalog as catalog_rows
from storage import datasets as dataset_rows
from storage import jobs as job_rows
from storage.db import Database


class Privacy:
    def __init__(self, db: Database, chat: ChatService, datasets: Datasets) -> None:
        self.db = db
        self.chat = chat
        self.datasets = datasets

    def forget_me(self, caller: Caller) -> ForgetReport:
        """Delete the caller's logged messages (and the answers to them), votes and
        corrections, their declined questions in the models' gaps, and their uploads with the examples parsed from them; compact the
        SQLite file (VACUUM). Trained versions stay: their weights cannot be untrained."""
        messages, feedback = self.chat.forget_logs(caller)
        asked = self.chat.knowledge.forget_asker(caller.user)
        with self.db.session() as s:
            in_use = job_rows.datasets_in_use(s, caller.user)
        gone = self.datasets.forget_owner(caller.user, keep=in_use)
        with self.db.session() as s:
            kept = [d.name for d in dataset_rows.by_ids(s, in_use)]
            trained = [f"{name} v{number}" for name, number in
                       catalog_rows.owned_versions(s, caller.user)]
        return ForgetReport(
            messages=messages, feedback=feedback, uploads=tuple(g.name for g in gone),
            examples=sum(g.examples for g in gone), files=sum(g.files for g in gone),
            kept_uploads=tuple(kept), trained=tuple(trained), freed_bytes=self.db.compact(),
            gap_questions=asked)
