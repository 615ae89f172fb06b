"""Conversation logs: conversations, messages, feedback, forget-me, retention, curated pairs."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Optional

from sqlalchemy import and_, delete, exists, func, or_
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, select

from storage.tables import ConversationRecord, FeedbackRecord, MessageRecord

VOTES = ("up", "down")


def conversation(session: Session, platform: str, workspace: str, channel: str, thread: str,
                 *, create: bool = True, now: Optional[datetime] = None
                 ) -> Optional[ConversationRecord]:
    """The conversation of a thread (or channel, DM, console session), created on first use."""
    key = (ConversationRecord.platform == platform, ConversationRecord.workspace == workspace,
           ConversationRecord.channel == channel, ConversationRecord.thread == thread)
    found = session.exec(select(ConversationRecord).where(*key)).first()
    if found is not None or not create:
        return found
    record = ConversationRecord(platform=platform, workspace=workspace, channel=channel,
                                thread=thread, **({"created_at": now} if now else {}))
    try:
        with session.begin_nested():  # another process may create the same one right now
            session.add(record)
    except IntegrityError:
        return session.exec(select(ConversationRecord).where(*key)).one()
    return record


def add_message(session: Session, **fields) -> MessageRecord:
    record = MessageRecord(**fields)
    session.add(record)
    session.flush()
    return record


def set_platform_id(session: Session, message_id: int, platform_message_id: str) -> bool:
    record = session.get(MessageRecord, message_id)
    if record is None:
        return False
    record.platform_message_id = platform_message_id
    session.add(record)
    return True


def find_answer(session: Session, ref: str, platform: str, workspace: str) -> Optional[MessageRecord]:
    """The logged answer a platform message id (or our own message id) points at, looked up
    within the caller's platform and workspace only."""
    scope = and_(MessageRecord.conversation_id == ConversationRecord.id,
                 ConversationRecord.platform == platform, ConversationRecord.workspace == workspace,
                 MessageRecord.role == "assistant")
    found = session.exec(select(MessageRecord).where(
        scope, MessageRecord.platform_message_id == ref).order_by(MessageRecord.id.desc())).first()
    if found is None and ref.isdigit() and len(ref) < 16:
        found = session.exec(select(MessageRecord).where(scope, MessageRecord.id == int(ref))).first()
    return found


def last_answer(session: Session, conversation_id: int, user: str) -> Optional[MessageRecord]:
    """The latest answer to `user` in the conversation, else the latest answer to anyone."""
    base = select(MessageRecord).where(MessageRecord.conversation_id == conversation_id,
                                       MessageRecord.role == "assistant")
    return (session.exec(base.where(MessageRecord.user == user)
                         .order_by(MessageRecord.id.desc())).first()
            or session.exec(base.order_by(MessageRecord.id.desc())).first())


def recent(session: Session, conversation_id: int, limit: int) -> list[MessageRecord]:
    rows = session.exec(select(MessageRecord).where(MessageRecord.conversation_id == conversation_id)
                        .order_by(MessageRecord.id.desc()).limit(limit)).all()
    return list(reversed(rows))


def vote_of(session: Session, message_id: int, user: str) -> Optional[FeedbackRecord]:
    return session.exec(select(FeedbackRecord).where(
        FeedbackRecord.message_id == message_id, FeedbackRecord.user == user,
        FeedbackRecord.kind.in_(VOTES))).first()


def correction_of(session: Session, message_id: int, user: str) -> Optional[FeedbackRecord]:
    return session.exec(select(FeedbackRecord).where(
        FeedbackRecord.message_id == message_id, FeedbackRecord.user == user,
        FeedbackRecord.kind == "correction")).first()


def _vote_counts(session: Session, feedback_filter) -> dict[int, list[int]]:
    """model id -> [ups, downs] among the feedback rows matching `feedback_filter`."""
    rows = session.execute(
        sa_select(MessageRecord.model_id, FeedbackRecord.kind, func.count())
        .join(MessageRecord, MessageRecord.id == FeedbackRecord.message_id)
        .where(feedback_filter, FeedbackRecord.kind.in_(VOTES), MessageRecord.model_id.isnot(None))
        .group_by(MessageRecord.model_id, FeedbackRecord.kind)).all()
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for model_id, kind, n in rows:
        counts[model_id][VOTES.index(kind)] += n
    return dict(counts)


def forget_user(session: Session, user: str) -> tuple[int, int, dict[int, list[int]]]:
    """Delete the user's messages, the answers to them and the user's feedback.

    Returns (messages deleted, own feedback rows deleted, {model id: [ups, downs] removed})
    so the caller can take the removed votes off the models' rating counts."""
    asked = sa_select(MessageRecord.id).where(MessageRecord.user == user).correlate(None)
    doomed = or_(MessageRecord.user == user, MessageRecord.reply_to_id.in_(asked))
    doomed_ids = sa_select(MessageRecord.id).where(doomed).correlate(None)
    gone = or_(FeedbackRecord.user == user, FeedbackRecord.message_id.in_(doomed_ids))
    votes = _vote_counts(session, gone)
    own = session.exec(select(func.count()).select_from(FeedbackRecord)
                       .where(FeedbackRecord.user == user)).one()
    session.execute(delete(FeedbackRecord).where(gone))
    deleted = session.execute(delete(MessageRecord).where(doomed)).rowcount or 0
    _drop_empty_conversations(session)
    return deleted, int(own), votes


def purge_before(session: Session, cutoff: datetime) -> int:
    """Delete messages (and their feedback) logged before `cutoff`; the number of messages."""
    old_ids = sa_select(MessageRecord.id).where(MessageRecord.created_at < cutoff).correlate(None)
    session.execute(delete(FeedbackRecord).where(FeedbackRecord.message_id.in_(old_ids)))
    deleted = session.execute(delete(MessageRecord).where(MessageRecord.created_at < cutoff)).rowcount
    _drop_empty_conversations(session, before=cutoff)
    return deleted or 0


def _drop_empty_conversations(session: Session, before: Optional[datetime] = None) -> None:
    empty = ~exists().where(MessageRecord.conversation_id == ConversationRecord.id)
    condition = empty if before is None else and_(empty, ConversationRecord.created_at < before)
    session.execute(delete(ConversationRecord).where(condition))


def curated_pairs(session: Session, model_id: int, since: Optional[datetime] = None, *,
                  workspace: str) -> list[tuple[str, str, str]]:
    """(question, answer, source) pairs logged for a model in one workspace: answers rated up
    and never down ("feedback"), and corrections ("correction"). Raw log material only:
    what trains a model is its approved pairs (storage/curation.py), never this directly."""
    question = aliased(MessageRecord)
    answer = MessageRecord
    in_workspace = exists().where(ConversationRecord.id == answer.conversation_id,
                                  ConversationRecord.workspace == workspace)
    up = sa_select(FeedbackRecord.id).where(FeedbackRecord.message_id == answer.id,
                                            FeedbackRecord.kind == "up")
    if since is not None:
        up = up.where(FeedbackRecord.created_at >= since)
    down = sa_select(FeedbackRecord.id).where(FeedbackRecord.message_id == answer.id,
                                              FeedbackRecord.kind == "down")
    liked = session.execute(
        sa_select(answer.id, question.content, answer.content)
        .join(question, question.id == answer.reply_to_id)
        .where(answer.model_id == model_id, answer.role == "assistant", in_workspace,
               exists(up), ~exists(down))).all()
    corrected = sa_select(FeedbackRecord.id, question.content, FeedbackRecord.correction) \
        .join(answer, answer.id == FeedbackRecord.message_id) \
        .join(question, question.id == answer.reply_to_id) \
        .where(answer.model_id == model_id, FeedbackRecord.kind == "correction",
               in_workspace, FeedbackRecord.correction != "")
    if since is not None:
        corrected = corrected.where(FeedbackRecord.created_at >= since)
    pairs: list[tuple[int, str, str, str]] = \
        [(i, q, a, "feedback") for i, q, a in liked] + \
        [(i, q, a, "correction") for i, q, a in session.execute(corrected).all()]
    seen: set[tuple[str, str]] = set()
    out: list[tuple[str, str, str]] = []
    for _, q, a, source in sorted(pairs, key=lambda p: (p[3] == "correction", p[0])):
        if (q.strip(), a.strip()) not in seen and q.strip() and a.strip():
            seen.add((q.strip(), a.strip()))
            out.append((q, a, source))
    return out


def common_questions(session: Session, model_id: int, platform: str, workspace: str,
                     limit: int) -> list[str]:
    """The questions asked of a model most often in one workspace, most asked first."""
    count = func.count(MessageRecord.id)
    rows = session.execute(
        sa_select(MessageRecord.content, count)
        .join(ConversationRecord, ConversationRecord.id == MessageRecord.conversation_id)
        .where(MessageRecord.role == "user", MessageRecord.model_id == model_id,
               ConversationRecord.platform == platform, ConversationRecord.workspace == workspace)
        .group_by(MessageRecord.content)
        .order_by(count.desc(), func.max(MessageRecord.id).desc())
        .limit(limit)).all()
    return [str(content) for content, _ in rows]
