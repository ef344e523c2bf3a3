"""The request queue and the worker thread that batches compatible requests.

Requests wait in one queue (bounded: one more gets 429). A single worker thread owns the model:
it takes the oldest request, waits a few milliseconds for more with the same intervention and
decoding settings (its *key*), and generates for up to ``max_batch`` of them in one batch.
Results and streamed text go back to the event loop with ``call_soon_threadsafe``. A batch that
fails is retried one request at a time, so one bad request cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import threading
import time
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from ..base.errors import CmrmError
from ..generation.generate import GenerationOptions
from .batch import Row, RowResult, run_batch
from .config import Limits, ServedIntervention
from .conversation import ChatVLM
from .errors import APIError, bad_request
from .intervention import Choice, build_steering

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Job:
    """One request waiting for (or in) a batch."""

    row: Row
    choice: Choice
    sampling: GenerationOptions
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[RowResult]
    deltas: asyncio.Queue[str] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    enqueued: float = field(default_factory=time.monotonic)

    def key(self, mixed_batches: bool) -> Hashable:
        s = self.sampling
        sampling = (s.temperature, s.top_p, s.seed) if s.do_sample else None
        image = None if mixed_batches else self.row.image is not None
        return (self.choice, sampling, image)

    def resolve(self, result: RowResult | BaseException) -> None:
        """Hand the outcome to the event loop (from any thread)."""

        def deliver() -> None:
            if self.future.done():
                return
            if isinstance(result, BaseException):
                self.future.set_exception(result)
            else:
                self.future.set_result(result)

        try:
            self.loop.call_soon_threadsafe(deliver)
        except RuntimeError:  # the event loop has closed: nobody is waiting any more
            logger.debug("dropped a result: the server's event loop is closed")


def stream_to(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str]) -> Any:
    """A row callback that forwards text pieces to ``queue`` on ``loop``."""

    def on_delta(text: str) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop has closed
            loop.call_soon_threadsafe(queue.put_nowait, text)

    return on_delta


class Engine:
    """Owns the model; batches and runs queued requests on one worker thread."""

    def __init__(self, vlm: ChatVLM, served: ServedIntervention, limits: Limits) -> None:
        self.vlm = vlm
        self.served = served
        self.limits = limits
        self.context_length = int(
            getattr(vlm.model.config.get_text_config(), "max_position_embeddings", 0) or 0
        )
        # Request checks run on other threads than the worker; a tokenizer must not be used
        # from two threads at once, so they get their own copy of the processor and a lock.
        self._checker = replace(vlm, processor=copy.deepcopy(vlm.processor))
        self._check_lock = threading.Lock()
        self._pending: list[Job] = []
        self._preparing = 0
        self._last_event = time.monotonic()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.batched_rows = 0

    # --- the event-loop side --------------------------------------------------------------

    def count_tokens(self, prompt: str, image: Image.Image | None) -> int:
        """Prompt length in tokens, image tokens included (also proves the request encodes).

        Raises:
            APIError: 400 when the processor or chat template cannot encode the request.
        """
        with self._check_lock:
            try:
                batch = self._checker.encode([prompt], [image])
            except Exception as err:  # template errors, processor errors: the request's fault
                raise bad_request(
                    f"the model's processor cannot encode this request: {err}", param="messages"
                ) from err
        return int(batch.input_ids.shape[1])

    @contextmanager
    def preparing(self) -> Iterator[None]:
        """Mark a request as on its way (being read and checked): the worker waits for it
        rather than start a batch without it."""
        with self._cond:
            self._preparing += 1
            self._last_event = time.monotonic()
        try:
            yield
        finally:
            with self._cond:
                self._preparing -= 1
                self._cond.notify()

    def submit(self, job: Job) -> None:
        """Queue a job.

        Raises:
            APIError: 429 when the queue is full, 503 when the server is stopping.
        """
        with self._cond:
            if self._stopping:
                raise APIError(503, "the server is shutting down; retry on another instance")
            if len(self._pending) >= self.limits.max_queue:
                raise APIError(
                    429,
                    f"the request queue is full ({self.limits.max_queue} waiting); retry later",
                    code="queue_full",
                )
            self._pending.append(job)
            self._last_event = time.monotonic()
            self._cond.notify()

    def stats(self) -> dict[str, Any]:
        with self._cond:
            waiting = len(self._pending)
        return {"waiting": waiting, "batches": self.batches, "batched_requests": self.batched_rows}

    # --- the worker side ------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="cmrm-serve-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._stopping = True
            left, self._pending = self._pending, []
            self._cond.notify_all()
        for job in left:
            job.resolve(APIError(503, "the server shut down before this request ran"))
        if self._thread is not None:
            self._thread.join(timeout)

    def _take(self) -> list[Job]:
        """The next batch: the oldest request and up to ``max_batch - 1`` compatible ones.

        The worker starts it when the batch is full, or when no request is on its way and none
        has arrived (nor a batch ended) for ``batch_wait_s``, or after ``batch_wait_max_s``.
        """
        mixed = self.vlm.spec.mixed_batches
        limits = self.limits
        with self._cond:
            while not self._pending and not self._stopping:
                self._cond.wait()
            start = time.monotonic()
            while not self._stopping:
                self._pending = [j for j in self._pending if not j.cancel.is_set()]
                if not self._pending:
                    return []
                key = self._pending[0].key(mixed)
                same = [j for j in self._pending if j.key(mixed) == key]
                now = time.monotonic()
                quiet = now - self._last_event
                waited = now - start
                if (
                    len(same) >= limits.max_batch
                    or waited >= limits.batch_wait_max_s
                    or (self._preparing == 0 and quiet >= limits.batch_wait_s)
                ):
                    jobs = same[: limits.max_batch]
                    self._pending = [j for j in self._pending if j not in jobs]
                    return jobs
                pause = limits.batch_wait_s - quiet if self._preparing == 0 else limits.batch_wait_s
                self._cond.wait(max(0.001, min(pause, limits.batch_wait_max_s - waited)))
            return []

    def _work(self) -> None:
        while not self._stopping:
            jobs = self._take()
            if jobs:
                self._run(jobs)

    def _run(self, jobs: list[Job]) -> None:
        steering = build_steering(jobs[0].choice, self.served)
        try:
            results = run_batch(self.vlm, [j.row for j in jobs], steering, jobs[0].sampling)
        except Exception as err:
            if len(jobs) > 1:
                logger.warning("a batch of %d failed (%s); retrying one by one", len(jobs), err)
                for job in jobs:
                    self._run([job])
                return
            logger.exception("request failed")
            failure: APIError = (
                bad_request(f"cannot generate for this request: {err}")
                if isinstance(err, CmrmError)
                else APIError(500, f"internal error while generating: {type(err).__name__}")
            )
            jobs[0].resolve(failure)
            return
        with self._cond:
            self.batches += 1
            self.batched_rows += len(jobs)
            self._last_event = time.monotonic()
        for job, result in zip(jobs, results, strict=True):
            job.resolve(result)
