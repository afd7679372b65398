"""When to retry and how long to wait: tenacity, wrapped in this one place.

```python
policy = RetryPolicy(Retries(attempts=4))
result = await retry_call(lambda: send(request), policy, on_retry=progress.retrying)
```

Retried: connection errors (timeouts included), HTTP 408, 409, 429 and 5xx
(`is_retryable`). The wait before attempt n+1, after attempt n failed:

- the server's `Retry-After` (seconds or an HTTP date) when the error carries
  one, capped at `Retries.retry_after_max` (default 120 s);
- otherwise exponential backoff with full jitter: uniform in
  `[0, min(maximum, initial * 2**(n-1))]`; with the defaults (`initial=0.5`,
  `maximum=30`) the caps run 0.5, 1, 2, 4, 8, 16, 30, 30... seconds.

`attempts` (default 6) counts the first try. After the last attempt the caller
gets the last error itself, typed, never a `tenacity.RetryError`.

`set_testing(True)` zeroes every wait (and with `attempts=` caps the tries) so
tests of code that retries run instantly, as with stamina.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TypeVar

import anyio
from tenacity import AsyncRetrying, RetryCallState

from ._config import DEFAULT_RETRIES, Retries
from ._exceptions import APIConnectionError, APIStatusError

__all__ = [
    "RETRYABLE_STATUSES",
    "RetryEvent",
    "RetryPolicy",
    "is_retryable",
    "is_testing",
    "parse_retry_after",
    "retry_call",
    "server_retry_after",
    "set_testing",
]

T = TypeVar("T")

#: HTTP statuses worth another try (besides every 5xx).
RETRYABLE_STATUSES = frozenset({408, 409, 429})


def is_retryable(exc: BaseException) -> bool:
    """True for a connection error or timeout, and for HTTP 408, 409, 429 and 5xx."""
    if isinstance(exc, APIConnectionError):
        return True
    if isinstance(exc, APIStatusError):
        return exc.status_code in RETRYABLE_STATUSES or exc.status_code >= 500
    return False


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """A `Retry-After` header in seconds from `now`: never negative, None when absent or garbage.

    Takes delay-seconds (`"120"`, `"1.5"`) or an HTTP date
    (`"Wed, 21 Oct 2015 07:28:00 GMT"`); a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT; email.utils leaves "-0000" naive
        when = when.replace(tzinfo=UTC)
    reference = now if now is not None else datetime.now(UTC)
    if reference.tzinfo is None:
        reference = reference.replace(tzinfo=UTC)
    return max(0.0, (when - reference).total_seconds())


def server_retry_after(exc: BaseException | None) -> float | None:
    """The wait the server asked for with this error (`retry_after`, seconds), if any.

    Read from any `APIStatusError` (a 429 or a 503 may carry one).
    """
    if not isinstance(exc, APIStatusError):
        return None
    value = exc.retry_after
    if value is not None and math.isfinite(value):
        return max(0.0, float(value))
    return None


@dataclass(slots=True)
class _TestingState:
    enabled: bool = False
    attempts: int | None = None


_TESTING = _TestingState()


class _TestingRestore:
    """Returned by `set_testing`: as a context manager, restores the previous mode on exit."""

    __slots__ = ("_previous",)

    def __init__(self, previous: _TestingState) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _TESTING.enabled = self._previous.enabled
        _TESTING.attempts = self._previous.attempts


def set_testing(enabled: bool, *, attempts: int | None = None) -> _TestingRestore:
    """Turn testing mode on or off for the whole process.

    In testing mode every retry wait (backoff and `Retry-After`, including the
    pause a `Retry-After` puts on all senders) is zero, and `attempts`, when
    given, caps the tries of every policy. Explicit `rps`/`ppm` limits still
    apply. Also a context manager: `with set_testing(True, attempts=2): ...`
    restores the previous mode on exit.
    """
    if attempts is not None and attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    previous = _TestingState(_TESTING.enabled, _TESTING.attempts)
    _TESTING.enabled = enabled
    _TESTING.attempts = attempts if enabled else None
    return _TestingRestore(previous)


def is_testing() -> bool:
    """Whether testing mode (zero waits) is on."""
    return _TESTING.enabled


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """One retry about to happen: `attempt` (1-based) failed with `exception`; sleeping `wait` s."""

    attempt: int
    exception: BaseException
    wait: float


class RetryPolicy:
    """Attempts and waits from a `Retries` config; `rng` makes the jitter reproducible."""

    __slots__ = ("_rng", "retries")

    def __init__(
        self, retries: Retries = DEFAULT_RETRIES, *, rng: random.Random | None = None
    ) -> None:
        self.retries = retries
        self._rng = rng if rng is not None else random.Random()

    def __repr__(self) -> str:
        return f"RetryPolicy({self.retries!r})"

    @property
    def attempts(self) -> int:
        """Tries in all, the first included (capped in testing mode)."""
        if _TESTING.enabled and _TESTING.attempts is not None:
            return min(self.retries.attempts, _TESTING.attempts)
        return self.retries.attempts

    def backoff_cap(self, attempt: int) -> float:
        """The upper bound of the jittered wait after failed attempt `attempt` (1-based)."""
        exponent = min(max(attempt - 1, 0), 64)  # past 2**64 every cap is `maximum` anyway
        return min(self.retries.maximum, self.retries.initial * 2.0**exponent)

    def wait_for(self, attempt: int, exc: BaseException | None) -> float:
        """Seconds to sleep after failed attempt `attempt` (1-based) raised `exc`."""
        if _TESTING.enabled:
            return 0.0
        retry_after = server_retry_after(exc)
        if retry_after is not None:
            return min(retry_after, self.retries.retry_after_max)
        # Full jitter (AWS architecture blog, "Exponential Backoff and Jitter").
        return self._rng.uniform(0.0, self.backoff_cap(attempt))

    def retrying(
        self,
        *,
        retry_if: Callable[[BaseException], bool] = is_retryable,
        on_retry: Callable[[RetryEvent], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> AsyncRetrying:
        """A `tenacity.AsyncRetrying` for `async for attempt in ...: with attempt: ...`."""

        def stop(state: RetryCallState) -> bool:
            return state.attempt_number >= self.attempts

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            return self.wait_for(state.attempt_number, exc)

        def retry(state: RetryCallState) -> bool:
            if state.outcome is None or not state.outcome.failed:
                return False
            exc = state.outcome.exception()
            return exc is not None and retry_if(exc)

        def before_sleep(state: RetryCallState) -> None:
            if on_retry is None or state.outcome is None:
                return
            exc = state.outcome.exception()
            assert exc is not None  # only failed attempts are retried
            on_retry(RetryEvent(state.attempt_number, exc, state.upcoming_sleep))

        return AsyncRetrying(
            sleep=sleep,
            stop=stop,
            wait=wait,
            retry=retry,
            before_sleep=before_sleep,
            reraise=True,
        )


async def retry_call(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    retry_if: Callable[[BaseException], bool] = is_retryable,
    on_retry: Callable[[RetryEvent], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> T:
    """Await `fn()` until it succeeds, `retry_if` says no, or the attempts run out.

    The last error is raised as itself. `on_retry` hears of each retry (attempt,
    error, wait) before the sleep; `sleep` is replaceable for tests.

    The first attempt is a plain await: most calls succeed at once, and
    tenacity's machinery costs ~20 us a call. A first failure worth retrying
    is handed to tenacity as its attempt 1 (raised again, not sent again), so
    the count of attempts, the waits and `on_retry` are tenacity's throughout.
    """
    try:
        return await fn()
    except Exception as exc:
        if policy.attempts <= 1 or not retry_if(exc):
            raise
        first: Exception | None = exc

    async def again() -> T:
        nonlocal first
        if first is not None:
            failed, first = first, None
            raise failed
        return await fn()

    async for attempt in policy.retrying(retry_if=retry_if, on_retry=on_retry, sleep=sleep):
        with attempt:
            return await again()
    raise AssertionError("unreachable: tenacity returns or re-raises")  # pragma: no cover
