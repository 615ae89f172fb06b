"""The chat runner: a bounded queue, one worker thread, batched greedy answers with adapters.

    runner = ChatRunner(hub, settings)
    answer = runner.answer(target, [{"role": "user", "content": "Hi"}], on_token=print)

Every request goes into one bounded queue shared fairly between workspaces (queue.py;
settings.queue_size; when it or the workspace's share is full, Busy at once). One worker
thread owns the models: requests for the same base are decoded together in one batch
(continuous batching: a request joins at the next step, leaves when done), each row with its
own LoRA adapter or none. Adapters are loaded on demand and kept in an LRU cache per base
(settings.adapter_cache_size); a new live version has a new adapter path, so the next
request simply loads it. `on_token` callbacks are called from the worker thread; asyncio
callers wrap theirs with `on_loop(loop, callback)`.

Faults stay with their request: a conversation is trimmed to its context budget
(settings.context_tokens); a request joins the batch only while the batch's KV cache stays
within settings.kv_cache_bytes (else it waits for rows to finish; alone it always runs); an
adapter that cannot be read, does not fit the base or holds NaNs fails its own requests at
once with one sentence and never reaches the batch.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from engine.errors import Busy, InvalidInput, ModelUnavailable, StoreError
from engine.serving.queue import FairQueue
from engine.settings import Settings
from engine.views import Target

log = logging.getLogger(__name__)

TokenCallback = Callable[[str], None]
BUSY = "The model is busy; try again in a moment."
BUSY_TENANT = ("The model is busy with this workspace's other questions; try again in a "
               "moment.")
GRACE_S = 5.0  # how much longer than its timeout a caller waits for the worker to give up
SPECULATION_SLACK = 16  # cache positions a row may take past its answer while guessing ahead
CHARS_PER_TOKEN_MAX = 32  # no token covers more characters: turns beyond are cut unread


@dataclass(frozen=True)
class Generated:
    text: str
    tokens: int
    latency_ms: int
    first_token_ms: int


def on_loop(loop: asyncio.AbstractEventLoop, callback: TokenCallback) -> TokenCallback:
    """A token callback, safe to call from the worker thread, that runs `callback` on `loop`."""
    return lambda piece: loop.call_soon_threadsafe(callback, piece)


def timeout_error(seconds: float) -> Busy:
    return Busy(f"The model took longer than {seconds:g} s to answer; try again in a moment "
                "or ask for a shorter answer.")


@dataclass
class _Request:
    target: Target
    messages: list[dict[str, str]]
    max_new_tokens: int
    on_token: TokenCallback | None
    timeout: float
    started: float
    deadline: float
    future: Future = field(default_factory=Future)
    prompt: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    sent: str = ""
    first_token_at: float | None = None
    copy_from: tuple[str, ...] = ()  # entries the answer is held to once it gives one
    lock: Any = None  # their CopyLock, made with the base's tokenizer at admission

    @property
    def longest(self) -> int:
        """The most cache positions this request's row can need."""
        return len(self.prompt) + self.max_new_tokens + SPECULATION_SLACK


def build_prompt(tokenizer: Any, messages: list[dict[str, str]], system_prompt: str,
                 budget: int) -> list[int]:
    """Chat-template ids that fit `budget`: oldest turns go first; system and newest stay."""
    system = [m for m in messages if m["role"] == "system"][:1]
    if not system and system_prompt:
        system = [{"role": "system", "content": system_prompt}]
    turns = [m for m in messages if m["role"] != "system"]
    if not turns:
        raise InvalidInput("There is no message to answer; send some text.")
    turns = _newest_within(turns, budget * CHARS_PER_TOKEN_MAX)
    while True:
        ids = tokenizer.apply_chat_template(system + turns, add_generation_prompt=True,
                                            tokenize=True, return_dict=False)
        if len(ids) <= budget:
            return list(ids)
        if len(turns) == 1:
            raise InvalidInput(
                f"The message is too long for this model ({len(ids)} tokens with the system "
                f"prompt; at most {budget}); shorten it.")
        turns = turns[1:]
        while len(turns) > 1 and turns[0]["role"] != "user":
            turns = turns[1:]


def _newest_within(turns: list[dict[str, str]], chars: int) -> list[dict[str, str]]:
    """The newest turns whose text fits `chars` (the newest always stays), starting with a
    user turn: a cheap first cut before the exact count with the chat template, so a
    thread of huge messages is not tokenized again and again."""
    kept, total = [turns[-1]], len(turns[-1]["content"])
    for turn in reversed(turns[:-1]):
        total += len(turn["content"])
        if total > chars:
            break
        kept.insert(0, turn)
    while len(kept) > 1 and kept[0]["role"] != "user":
        kept = kept[1:]
    return kept


class ChatRunner:
    """Answers conversations; safe to call from any thread and from asyncio."""

    def __init__(self, hub: Any, settings: Settings, *, clock: Callable[[], float] = time.monotonic,
                 context_window: int | None = None,
                 before_step: Callable[[int], None] | None = None,
                 speculative: bool = True) -> None:
        self.hub = hub
        self.settings = settings
        self.clock = clock
        self.context_window = context_window
        self.before_step = before_step  # test seam: called with the batch size before each step
        # How a request decoding alone guesses ahead: "auto" (4-bit draft, else prompt
        # lookup), "lookup" or "off" (settings.speculation; speculative=False forces off).
        self.speculation = settings.speculation if speculative else "off"
        self._lock = threading.Condition()
        self._queue: FairQueue[_Request] = FairQueue(lambda: self.settings.queue_size)
        self._calls: collections.deque[tuple[Callable[[], Any], Future]] = collections.deque()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._adapters: dict[str, collections.OrderedDict[str, Any]] = {}
        self._decoders: dict[str, Any] = {}
        self._drafts: dict[str, Any] = {}  # base -> 4-bit draft weights, or None

    # -- callers ------------------------------------------------------------------------

    def submit(self, target: Target, messages: list[dict[str, str]], *,
               max_new_tokens: int | None = None, on_token: TokenCallback | None = None,
               timeout: float | None = None, copy_from: Sequence[str] = ()) -> Future:
        """Queue a request; Busy at once when the queue is full. The future holds Generated.

        copy_from: the texts of the Q&A entries in the conversation's context; once the
        answer has given one of them word for word for a few tokens, it gives the rest of it
        (engine.serving.copying)."""
        timeout = self.settings.request_timeout_s if timeout is None else timeout
        limit = self.settings.max_new_tokens if max_new_tokens is None else max_new_tokens
        now = self.clock()
        request = _Request(target, list(messages), max(1, int(limit)), on_token, timeout, now,
                           now + timeout, copy_from=tuple(t for t in copy_from if t.strip()))
        with self._lock:
            if self._closed:
                raise StoreError("The chat runner has stopped; restart gptstore to chat again.")
            if not self._queue.put(target.tenant, request):
                raise Busy(BUSY if len(self._queue) >= self.settings.queue_size
                           else BUSY_TENANT)
            self._start()
            self._lock.notify()
        return request.future

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="chat-runner", daemon=True)
            self._thread.start()

    def answer(self, target: Target, messages: list[dict[str, str]], *,
               max_new_tokens: int | None = None, on_token: TokenCallback | None = None,
               timeout: float | None = None, copy_from: Sequence[str] = ()) -> Generated:
        """Answer one conversation (blocking). Raises Busy when full or too slow."""
        timeout = self.settings.request_timeout_s if timeout is None else timeout
        future = self.submit(target, messages, max_new_tokens=max_new_tokens,
                             on_token=on_token, timeout=timeout, copy_from=copy_from)
        try:
            return future.result(timeout=timeout + GRACE_S)
        except FutureTimeout:
            future.cancel()
            raise timeout_error(timeout) from None

    async def answer_async(self, target: Target, messages: list[dict[str, str]], *,
                           max_new_tokens: int | None = None,
                           on_token: TokenCallback | None = None,
                           timeout: float | None = None,
                           copy_from: Sequence[str] = ()) -> Generated:
        """answer() for asyncio: never blocks the loop. Wrap on_token with on_loop()."""
        timeout = self.settings.request_timeout_s if timeout is None else timeout
        future = self.submit(target, messages, max_new_tokens=max_new_tokens,
                             on_token=on_token, timeout=timeout, copy_from=copy_from)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout + GRACE_S)
        except asyncio.TimeoutError:
            future.cancel()
            raise timeout_error(timeout) from None

    def call(self, fn: Callable[[], Any]) -> Future:
        """Run `fn` on the worker thread, between batch steps; the future holds its result.

        For torch work that should share the worker's thread: torch's CPU thread pool belongs
        to the thread that calls it, and on a small machine a second thread's pool makes the
        worker's many small operations wait on each other (measured: decoding with the 4-bit
        draft ran at half speed on 2 cores once another thread had used torch)."""
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise StoreError("The chat runner has stopped; restart gptstore to chat again.")
            self._calls.append((fn, future))
            self._start()
            self._lock.notify()
        return future

    def draft_for(self, base_path: str) -> Any:
        """The 4-bit draft weights used for a base (engine.serving.draft), or None: not built yet,
        speculation not "auto", or not faster on this machine."""
        return self._drafts.get(base_path)

    def queue_depth(self) -> int:
        """Requests waiting to join a batch (the metrics gauge)."""
        return len(self._queue)

    def loaded_adapters(self, base_path: str) -> list[str]:
        """Adapter paths held for a base, least recently used first."""
        return list(self._adapters.get(base_path, {}))

    def kv_cache(self, base_path: str) -> tuple[int, int]:
        """(bytes the base's batch KV cache holds now, the most it has held)."""
        decoder = self._decoders.get(base_path)
        return (decoder.cache_bytes, decoder.peak_cache_bytes) if decoder else (0, 0)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    # -- the worker thread --------------------------------------------------------------

    def _work(self) -> None:
        waiting: collections.deque[_Request] = collections.deque()
        decoder: Any = None
        while True:
            with self._lock:
                while not self._closed and not self._queue and not self._calls and not waiting \
                        and (decoder is None or decoder.rows == 0):
                    self._lock.wait()
                if self._closed:
                    stopped = self._queue.clear() + list(waiting)
                    stopped += list(decoder.payloads) if decoder is not None else []
                    break
                waiting.extend(self._queue.take(self.settings.max_batch - len(waiting)))
                calls = list(self._calls)
                self._calls.clear()
            for fn, future in calls:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn())
                    except BaseException as exc:  # the caller's function: its error is theirs
                        future.set_exception(exc)
            try:
                decoder = self._admit(decoder, waiting)
                if decoder is None or decoder.rows == 0:
                    continue
                if self.before_step is not None:
                    self.before_step(decoder.rows)
                self._step(decoder)
            except Exception as exc:  # a bug: fail the batch, keep serving
                log.exception("chat batch failed")
                while decoder is not None and decoder.rows:
                    _fail(decoder.payloads[-1], exc)
                    decoder.drop(decoder.rows - 1)
        for request in stopped:
            _fail(request, StoreError("The chat runner stopped before answering; try again."))
        with self._lock:
            calls = list(self._calls)
            self._calls.clear()
        for _, future in calls:
            future.cancel()

    def _admit(self, decoder: Any, waiting: collections.deque[_Request]) -> Any:
        """Prefill waiting requests into the batch (those on the batch's base), first come
        first served: one that would take the KV cache past its budget waits, and the ones
        behind it with it, until rows finish. A request's own fault (its adapter, its text)
        fails that request alone, at once."""
        for request in list(waiting):
            if decoder is not None and decoder.rows >= decoder.max_rows:
                break
            base = request.target.base_path
            if decoder is not None and decoder.rows and decoder.base != base:
                continue
            if request.future.done():
                waiting.remove(request)
                continue
            if self.clock() >= request.deadline:
                waiting.remove(request)
                _fail(request, timeout_error(request.timeout))
                continue
            try:
                decoder = self._decoder(base)
                if not request.prompt:
                    request.prompt = self._prompt(decoder, request)
                    if request.copy_from:
                        from engine.serving.copying import CopyLock, source_tokens

                        _, tokenizer = self.hub.load(decoder.base)
                        request.lock = CopyLock(source_tokens(tokenizer, request.copy_from))
                if decoder.rows and decoder.bytes_for(decoder.rows + 1, min(decoder.max_len, max(
                        [request.longest] + [p.longest for p in decoder.payloads]))) \
                        > self.settings.kv_cache_bytes:
                    break  # waits for room; alone in the batch it always fits
                adapter = self._adapter(decoder, request.target)
                waiting.remove(request)
                first = decoder.add(request.prompt, adapter, request)
            except Exception as exc:  # this request's fault: fail it, keep the batch
                if request in waiting:
                    waiting.remove(request)
                if not isinstance(exc, StoreError):
                    log.exception("chat request for %s failed", request.target.model_name)
                    exc = ModelUnavailable(
                        f"'{request.target.model_name}' could not start answering "
                        f"({type(exc).__name__}); try again, or ask its owner to check it.")
                _fail(request, exc)
                continue
            self._advance(decoder, decoder.rows - 1, first)
        return decoder

    def _prompt(self, decoder: Any, request: _Request) -> list[int]:
        """The request's conversation as ids, within its context budget: the settings'
        context_tokens and the window less the answer's room (oldest turns go first)."""
        _, tokenizer = self.hub.load(decoder.base)
        room = max(decoder.max_len - request.max_new_tokens, decoder.max_len // 2)
        budget = max(1, min(self.settings.context_tokens, room))
        return build_prompt(tokenizer, request.messages, request.target.system_prompt, budget)

    def _step(self, decoder: Any) -> None:
        now = self.clock()
        for row in reversed(range(decoder.rows)):
            request = decoder.payloads[row]
            if request.future.done():
                decoder.drop(row)
            elif now >= request.deadline:
                _fail(request, timeout_error(request.timeout))
                decoder.drop(row)
        if decoder.rows == 0:
            return
        if self.speculation != "off" and decoder.rows == 1 and getattr(decoder, "speculates",
                                                                        True):
            # Alone in the batch: guess ahead (4-bit draft, else from the conversation) and
            # check the guesses with the full model in one pass.
            from engine.serving.speculative import (
                DRAFT_TOKENS,
                speculate,
                speculate_with_draft,
            )

            request = decoder.payloads[0]
            draft = self._drafts.get(decoder.base) if self.speculation == "auto" else None
            forced = _held(decoder, 0)
            if forced:  # the rest of the entry it is giving: fed in one forward pass
                decoder.extend(0, [request.tokens[-1], *forced[:-1]])
                tokens = forced
            elif draft is not None:
                room = request.max_new_tokens - len(request.tokens) - 1
                tokens = speculate_with_draft(decoder, draft, request.tokens[-1],
                                              min(DRAFT_TOKENS, room))
            else:
                tokens = speculate(decoder, request.prompt + request.tokens)
            for i, token in enumerate(tokens):
                self._advance(decoder, 0, token, ahead=len(tokens) - 1 - i)
                if decoder.rows == 0:
                    break
            return
        last = [request.tokens[-1] for request in decoder.payloads]
        for row, token in reversed(list(enumerate(decoder.step(last)))):
            forced = _held(decoder, row, 1)
            self._advance(decoder, row, forced[0] if forced else token)

    def _advance(self, decoder: Any, row: int, token: int, ahead: int = 0) -> None:
        """Record a row's new token: stream it, and finish the row when it is done.

        `ahead`: how many of the row's cached tokens come after this one (speculation feeds
        several at once), so the context-window check sees the length a plain step would."""
        request: _Request = decoder.payloads[row]
        model, tokenizer = self.hub.load(decoder.base)
        ended = token in decoder.stop
        if not ended:
            request.tokens.append(token)
        if request.first_token_at is None:
            request.first_token_at = self.clock()
        done = (ended or len(request.tokens) >= request.max_new_tokens
                or decoder.lengths[row] - ahead + 1 >= decoder.max_len)
        text = tokenizer.decode(request.tokens, skip_special_tokens=True)
        try:
            if request.on_token is not None and text.startswith(request.sent) and (
                    done or not text.endswith("\ufffd")) and len(text) > len(request.sent):
                request.on_token(text[len(request.sent):])
                request.sent = text
        except Exception as exc:  # the caller's callback failed: end that request only
            _fail(request, exc)
            decoder.drop(row)
            return
        if done:
            now = self.clock()
            result = Generated(text=text, tokens=len(request.tokens),
                               latency_ms=int((now - request.started) * 1000),
                               first_token_ms=int((request.first_token_at - request.started) * 1000))
            try:
                request.future.set_result(result)
            except InvalidStateError:
                pass
            decoder.drop(row)

    # -- models and adapters (worker thread only) ---------------------------------------

    def _decoder(self, base: str) -> Any:
        found = self._decoders.get(base)
        if found is None:
            from engine.serving.decoder import BatchDecoder, supports

            model, _ = self.hub.load(base)
            window = getattr(model.config, "max_position_embeddings", 2048)
            if self.context_window:
                window = min(window, self.context_window)
            kind = BatchDecoder
            if not supports(model):  # another family: the model's own forward, row by row
                from engine.serving.general import GeneralDecoder

                kind = GeneralDecoder
                log.info("chat on %s (%s) takes the general path: the batched decoder runs "
                         "Llama-style models only", base,
                         getattr(model.config, "model_type", "unknown"))
            found = kind(model, max_rows=self.settings.max_batch, max_len=window, base=base)
            self._decoders[base] = found
            if self.speculation == "auto" and kind is BatchDecoder:
                from engine.serving import draft as drafting

                self._drafts[base] = drafting.build(model)
        return found

    def _adapter(self, decoder: Any, target: Target) -> Any:
        """The target's adapter (None for a base model), loaded once into the base's LRU.
        One that cannot be read, does not fit the base or holds NaN is refused here with
        ModelUnavailable, so it never joins a batch (its NaNs would reach every row)."""
        path, base = target.adapter_path, decoder.base
        if not path:
            return None
        cache = self._adapters.setdefault(base, collections.OrderedDict())
        if path in cache:
            cache.move_to_end(path)
            return cache[path]
        from engine.serving.lora import load_lora

        model, _ = self.hub.load(base)
        version = f" v{target.version}" if target.version else ""
        try:
            # A stored adapter (artifact:<sha256>) is fetched into this host's cache once.
            adapter = load_lora(self.hub.local(path), model.device, model.dtype)
        except Exception as exc:
            log.warning("adapter %s cannot be read: %s: %s", path, type(exc).__name__, exc)
            reason = "files are missing or damaged"
        else:
            try:
                decoder.check_adapter(adapter)
                reason = ""
            except ModelUnavailable as exc:
                log.warning("adapter %s refused: %s", path, exc)
                reason = str(exc)
        if reason:
            raise ModelUnavailable(
                f"'{target.model_name}'{version} cannot answer: its adapter {reason}; roll "
                f"back to another version (`/store versions {target.model_name}`) or retrain "
                "it.")
        cache[path] = adapter
        while len(cache) > self.settings.adapter_cache_size:
            cache.popitem(last=False)
        return adapter


def _held(decoder: Any, row: int, limit: int = 1 << 30) -> list[int]:
    """The next tokens of the entry a row's answer is giving (engine.serving.copying), as
    many as fit its answer's room and its cache; [] when it is not giving one."""
    request: _Request = decoder.payloads[row]
    if not request.lock or not request.tokens:
        return []
    room = min(limit, request.max_new_tokens - len(request.tokens),
               decoder.max_len - decoder.lengths[row] - 2)
    return request.lock.forced(request.tokens, room)


def _fail(request: _Request, error: BaseException) -> None:
    try:
        request.future.set_exception(error)
    except InvalidStateError:
        pass
