"""One attempt at a URL, as a machine on callbacks: the only way afetch fetches.

The shape is Tornado's ``curl_httpclient`` (and afetch's cache: ``lookup_now`` over
``lookup_then``): each step starts the next or hands it to a callback, so a plain fetch costs no
coroutine, task or future. :meth:`afetch.attempt.fetcher.Fetcher.attempt` is a future around it.

The steps of an :class:`Attempt`, in order:

1. pre-steps: the ``--cache`` look-up (answered at once, or through a callback) and, per
   request, the ``--no-private`` address pin (a coroutine: the machine waits for it);
2. send (:meth:`afetch.engine.base.Engine.start_transfer`);
3. the head: a redirect to follow is stopped there and followed (:func:`redirect_request`),
   else the body goes to the sinks that want it (``--include`` body keeper, ``--hash`` and
   ``--save-dir``'s :class:`afetch.attempt.save.BodyConsumer`, which holds the transfer while
   its batch is written in a thread) or is only counted;
4. the end: the cache update, the file completed, the record built and told.

The deadline is one loop time per attempt, set when it starts: the cache look-up and the pin
give up at it, and the engine ends the transfer at it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from afetch._errors import ErrorType, InvalidInput, TooManyRedirects, classify
from afetch._record import FetchError, Record
from afetch._timestamps import now_iso
from afetch._url import Target, parse_url
from afetch.attempt.outcome import Outcome, ServerHints
from afetch.attempt.plan import Plan, secrets_for
from afetch.attempt.redirect import Headers, redirect_request, with_credentials
from afetch.engine.base import BodySink, Request, Response, Transfer

if TYPE_CHECKING:
    from afetch._include import Verdict
    from afetch.attempt.include import BodyKeeper
    from afetch.attempt.save import BodyConsumer
    from afetch.cache import BatchedCache, Validators

#: How a request is shaped: method, body, headers.
Shape = tuple[str, bytes | None, Headers]


#: Told an attempt's end: the caller's token, the record and the last head's pacing hints.
Done = Callable[[Any, Record, "ServerHints | None"], None]


class Attempt(Outcome):
    """One attempt: what is known so far (:class:`Outcome`) becomes the record whatever
    happens.

    Class attributes are the defaults (one object per attempt, no more): an attempt sets only
    what it learns and uses, and those every attempt reads (see ``__init__``).
    """

    deadline: float | None = None
    cache: BatchedCache | None = None  # --cache, for GET and HEAD only
    cached: Validators | None = None  # --cache: what the look-up found
    #: The cached validators' headers, sent with the first request and every redirect.
    extra: Headers = ()
    consumer: BodyConsumer | None = None  # --save-dir, or --hash with a kept body
    hasher: Any = None  # --hash alone: the body's sha256
    writing: asyncio.Future[None] | None = None  # --save-dir: the batch being written
    transfer: Transfer | None = None  # the engine's, while it runs
    head: Response | None = None  # --save-dir: the final head, while its body is written
    task: asyncio.Task[None] | None = None  # a step that awaits (pin, save, derive)
    over = False

    def __init__(
        self,
        plan: Plan,
        url: str,
        shape: Shape,
        method: str | None,
        done: Done,
        token: Any,
        target: Target | None = None,
    ) -> None:
        self.plan = plan
        self.url = url
        #: ``url`` checked (afetch._url.parse_url), if the caller did that already.
        self.target = target
        self.shape = shape
        self.method = method  # as the record says it (None: not said)
        self.done = done
        self.token = token
        self.started_at = now_iso()
        self.t0 = time.perf_counter()
        # The defaults every attempt reads, set here: read through an instance, a class
        # attribute is a failed look-up in the instance first (~200 instructions a read).
        self.spec = None
        self.extra = ()
        self.over = False
        self.redirects = 0
        self.waited_from = self.not_modified = self.path = self.sha256 = None

    # -- 1. pre-steps --------------------------------------------------------------------------

    def begin(self, now: float) -> None:
        """Start, at loop time ``now``; every failure ends in the record (never told from
        inside this call: the caller may be in the middle of something)."""
        try:
            spec = self.spec
            if spec is not None and spec.invalid is not None:
                raise InvalidInput(spec.invalid)
            if self.target is None:
                self.target = parse_url(self.url)
            plan = self.plan
            if plan.timeout is not None:
                self.deadline = now + plan.timeout
            # Conditional requests are for reading a resource again, not for sending one.
            if plan.cache is not None and self.shape[0] in ("GET", "HEAD"):
                self.cache = cache = plan.cache
                self.not_modified = False
                found = cache.lookup_now(self.url)
                if found is plan.unknown:
                    # The worker thread's deadline is on the loop's clock.
                    until = None
                    if plan.timeout is not None:
                        until = asyncio.get_running_loop().time() + plan.timeout
                    cache.lookup_then(self.url, until, self._looked_up)
                    return  # continued in _looked_up, on a later turn
                if found is not None:
                    self._use(found)
            self._send_first()
        except Exception as exc:
            asyncio.get_running_loop().call_soon(self._end, exc)

    def _looked_up(self, cached: Validators | None) -> None:
        """--cache: the look-up's answer (a miss once the deadline passed)."""
        try:
            if cached is not None:
                self._use(cached)
            self._send_first()
        except Exception as exc:
            self._end(exc)

    def _use(self, cached: Validators) -> None:
        # As headers after the request's own: those stay the run's one tuple, formatted once.
        self.cached = cached
        self.extra = cached.header_pairs()

    def _send_first(self) -> None:
        method, body, headers = self.shape
        target = self.target
        if target.authorization is not None:  # user:password@ (most URLs carry none)
            headers = with_credentials(headers, target)
        self._send(Request(method, target.url, headers, body, None, self.deadline), target)

    # -- 2. send -------------------------------------------------------------------------------

    def _send(self, request: Request, target: Target) -> None:
        self.request, self.target = request, target
        self.final_url = target.shown
        plan = self.plan
        if plan.address_check is not None:
            self.task = asyncio.ensure_future(self._pin_then_send(request, target))
            return
        self.transfer = plan.engine.start_transfer(
            request,
            on_done=self._transferred,
            on_head=self._on_head,
            ask_for=plan.ask_for,
            extra=self.extra,
        )

    async def _pin_then_send(self, request: Request, target: Target) -> None:
        """--no-private: the address the host resolves to, checked, before each request."""
        assert self.plan.address_check is not None
        _, host, port = target.origin
        timer = None
        if self.deadline is not None:
            clock = self.plan.clock or asyncio.get_running_loop()
            timer = clock.call_at(self.deadline, self._expire)
        try:
            pin = await self.plan.address_check.pin(host, port)
        except Exception as exc:
            self._end(exc)
            return
        finally:
            if timer is not None:
                timer.cancel()
        self.task = None
        try:
            self.transfer = self.plan.engine.start_transfer(
                request._replace(pin=pin),
                on_done=self._transferred,
                on_head=self._on_head,
                ask_for=self.plan.ask_for,
                extra=self.extra,
            )
        except Exception as exc:
            self._end(exc)

    def _expire(self) -> None:
        """The deadline passed during a pre-step (the engine keeps it during a transfer)."""
        task, self.task = self.task, None
        if task is not None and not self.over:
            task.cancel()
            self._end(TimeoutError(f"no complete response within {self.plan.timeout}s"))

    # -- 3. the head ---------------------------------------------------------------------------

    def _on_head(self, response: Response) -> bool | BodySink:
        """Called by the engine: stop at a redirect to follow, else where the body goes."""
        plan = self.plan
        status = response.status
        if status in plan.redirect_statuses and response.header("location") is not None:
            return False  # not read: followed when the transfer is over
        if self.request.method == "HEAD":
            return True
        wanted = plan.wanted
        if wanted is not None and wanted.body:
            self.kept = wanted.keeper()
        if plan.keep_bodies and 200 <= status < 300:
            if plan.save_dir is None and self.kept is None:
                # --hash alone: the pieces go straight into the hash's own update (C).
                self.hasher = hasher = plan.sha256()
                return hasher.update  # type: ignore[no-any-return]
            self.consumer = consumer = plan.body_consumer(self.url, plan.save_dir)
            if consumer.saves:
                self.head = response  # told if a write fails before the transfer ends
        elif self.kept is None:
            return True
        return self._on_piece

    def _on_piece(self, piece: bytes) -> bool:
        """A piece of the body (called by the engine); True holds the transfer while a batch
        is written."""
        self.bytes += len(piece)  # so far, should a write fail before the transfer ends
        if self.kept is not None:
            self.kept.add(piece)  # the first --body-limit bytes; the rest is only counted
        consumer = self.consumer
        if consumer is not None and consumer.add(piece):
            self.writing = writing = consumer.write()
            writing.add_done_callback(self._written)
            return True
        return False

    def _written(self, writing: asyncio.Future[None]) -> None:
        transfer = self.transfer
        if writing is not self.writing or writing.cancelled() or transfer is None:
            return  # over already: the end step awaits this batch
        self.writing = None
        failure = writing.exception()
        if failure is not None:
            self.transfer = None
            transfer.cancel()
            if self.head is not None:
                self.saw(self.head)  # what the record can tell of a transfer cut short here
            self._conclude(failure)
        else:
            transfer.resume()

    # -- 4. the end ----------------------------------------------------------------------------

    def _transferred(self, response: Response | None, failure: BaseException | None) -> None:
        """The engine is done with the transfer: follow a redirect, or conclude."""
        self.transfer = None
        try:
            if response is not None:
                self.saw(response)
                if failure is None and response.status in self.plan.redirect_statuses:
                    location = response.header("location")
                    if location is not None:
                        self._follow(location, response.status)
                        return
                self.bytes = response.bytes_read
            if self.plan.wanted is not None:
                self.final = response
                self.info = (
                    response.info
                    if response is not None
                    else getattr(failure, "transfer_info", None)  # a failed TLS handshake
                )
        except Exception as exc:
            failure = exc
        plan = self.plan
        if plan.wanted is None and not plan.keep_bodies and plan.cache is None:
            self._end(failure)  # a plain run: nothing kept, hashed, saved or cached
        else:
            self._conclude(failure, response)

    def _follow(self, location: str, status: int) -> None:
        if self.redirects >= self.plan.max_redirects:
            raise TooManyRedirects(f"stopped after {self.plan.max_redirects} redirects")
        request, target = redirect_request(self.request, self.target, location, status)
        self.redirects += 1
        self._send(request, target)

    def _conclude(self, failure: BaseException | None, response: Response | None = None) -> None:
        """The body is in: what is left to do awaits only for a file, a large kept body or
        (--include soft404) the host's canary."""
        consumer = self.consumer
        kept = self.kept
        canary = False
        wanted = self.plan.wanted
        if wanted is not None and wanted.canary and failure is None and kept is not None:
            from afetch.attempt.soft404 import NOT_SOFT

            self.verdict = NOT_SOFT  # unless a 200 that its host's canary matches
            canary = self.status == 200
        if (
            canary
            or (consumer is not None and consumer.saves)
            or (kept is not None and kept.size > _on_loop_max())
        ):
            self.task = asyncio.ensure_future(self._conclude_slowly(failure, response, canary))
            return
        try:
            if failure is None:
                if self.hasher is not None:
                    self.sha256 = self.hasher.hexdigest()
                elif consumer is not None:
                    self.sha256 = consumer.digest()
                if self.cache is not None and response is not None:
                    self._update_cache(response)
        except Exception as exc:
            failure = exc
        self._end(failure)

    async def _conclude_slowly(
        self, failure: BaseException | None, response: Response | None, canary: bool = False
    ) -> None:
        consumer = self.consumer
        try:
            if consumer is not None:
                if self.writing is not None:
                    await self.writing  # the last batch the transfer held for
                if failure is None:
                    self.path, self.sha256 = await consumer.finish()
            if failure is None and self.cache is not None and response is not None:
                self._update_cache(response)
        except Exception as exc:
            failure = failure or exc
        finally:
            if consumer is not None:
                consumer.abort()  # no-op after finish(): removes a partial file
        if self.kept is not None:
            from afetch.attempt.include import derive

            assert self.plan.wanted is not None
            try:
                self.derived = await derive(self.plan.wanted, self.kept, self.content_type)
            except Exception:  # as _extra_or_none: the keys are null, the record stays
                self.kept = None
        if canary and self.kept is not None:
            try:
                self.verdict = await self._likeness(self.kept)
            except Exception:
                self.verdict = None
        self.task = None
        self._end(failure)

    async def _likeness(self, kept: BodyKeeper) -> Verdict:
        """--include soft404: this 200 against its host's canary (started by the first)."""
        from afetch.attempt.soft404 import sign_of, verdict

        page = await sign_of(200, kept, self.content_type, self.url)
        # elapsed_ms is the attempt's own: the wait for the host's canary is not in it.
        self.waited_from = time.perf_counter()
        # Shielded: the canary is the host's, not this attempt's to cancel.
        canary = await asyncio.shield(self.plan.canaries.sign_for(self.url, self.shape[2]))
        return verdict(page, canary, self.url)

    def _update_cache(self, response: Response) -> None:
        """--cache: the validators to keep; the store is written behind."""
        cache, cached = self.cache, self.cached
        assert cache is not None
        self.not_modified = response.status == 304 and cached is not None
        fresh = self.plan.validators.to_keep(cached, response)
        if fresh != cached:
            cache.store(self.url, fresh)

    def _end(self, failure: BaseException | None) -> None:
        if self.over:
            return
        self.over = True
        try:
            error = None
            if failure is not None:
                error = classify(failure, secrets_for(self.plan.secrets, self.url, self.spec))
            record = self.record(error)
        except Exception as exc:
            # A fault of afetch's own: still one record for the URL, and never a run that
            # waits for an attempt nobody will finish.
            problem = FetchError(
                ErrorType.OTHER.value, f"afetch could not describe this attempt ({exc!r})"
            )
            record = Record(url=self.url, error=problem, started_at=self.started_at)
        self.done(self.token, record, self.hints)

    def cancel(self) -> None:
        """Abandon the attempt (its awaiting caller was cancelled): nothing is told."""
        self.over = True
        transfer, self.transfer = self.transfer, None
        if transfer is not None:
            transfer.cancel()
        if self.task is not None:
            self.task.cancel()
        if self.consumer is not None:
            self.consumer.abort()


def _on_loop_max() -> int:
    from afetch.attempt.include import ON_LOOP_MAX

    return ON_LOOP_MAX
