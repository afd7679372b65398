"""The retry policy: what is retried, how long it waits, what the caller sees."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aioupstage_ocr._config import Retries
from aioupstage_ocr._exceptions import (
    AmbiguousSubmitError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    DocumentNotFoundError,
    InternalServerError,
    RateLimitError,
    status_error_class,
)
from aioupstage_ocr._retry import (
    RetryEvent,
    RetryPolicy,
    is_retryable,
    is_testing,
    parse_retry_after,
    retry_call,
    set_testing,
)


def status_error(code: int) -> APIStatusError:
    return status_error_class(code)(f"status {code}", status_code=code)


class Calls:
    """An async callable that raises the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.count = 0

    async def __call__(self) -> str:
        self.count += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class FakeSleep:
    """Records waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.mark.parametrize("code", [408, 409, 429, 500, 501, 502, 503, 504, 599])
def test_retryable_statuses(code: int) -> None:
    """408, 409, 429 and every 5xx are retried."""
    assert is_retryable(status_error(code))


@pytest.mark.parametrize("code", [400, 401, 403, 404, 410, 413, 415, 422])
def test_final_statuses(code: int) -> None:
    """Client errors other than 408/409/429 are final."""
    assert not is_retryable(status_error(code))


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (APIConnectionError("reset"), True),
        (APITimeoutError("slow"), True),
        (AmbiguousSubmitError("a.pdf", "connection dropped after upload"), False),
        (DocumentNotFoundError("a.pdf", "no such file"), False),
        (ValueError("bug"), False),
    ],
)
def test_retryable_other_errors(exc: BaseException, expected: bool) -> None:
    """Connection errors and timeouts are retried; an ambiguous submit and the rest are not."""
    assert is_retryable(exc) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-5", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("Mon, 99 Foo 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    """Delay-seconds parse, never negative; absent or garbage gives None."""
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    """An HTTP date gives the seconds until it; a past date gives 0."""
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    earlier = format_datetime(now - timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now=now) == 90.0
    assert parse_retry_after(earlier, now=now) == 0.0
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30.0


def test_wait_honours_retry_after_and_cap() -> None:
    """A server Retry-After replaces the backoff, capped at retry_after_max."""
    policy = RetryPolicy(Retries(retry_after_max=60.0))
    assert policy.wait_for(1, RateLimitError("slow down", retry_after=7.0)) == 7.0
    assert policy.wait_for(5, RateLimitError("slow down", retry_after=0.0)) == 0.0
    assert policy.wait_for(1, RateLimitError("slow down", retry_after=3600.0)) == 60.0


def test_wait_honours_retry_after_on_503() -> None:
    """A 503 carrying retry_after (set by the transport) is honoured too."""
    exc = InternalServerError("unavailable", status_code=503)
    exc.retry_after = 4.0  # type: ignore[attr-defined]
    assert RetryPolicy().wait_for(1, exc) == 4.0


def test_wait_without_retry_after_is_jittered_backoff() -> None:
    """A 429 without Retry-After backs off with jitter under the exponential cap."""
    policy = RetryPolicy(Retries(initial=1.0, maximum=8.0), rng=random.Random(1))
    waits = [policy.wait_for(3, RateLimitError("slow down")) for _ in range(500)]
    assert all(0.0 <= w <= 4.0 for w in waits)
    # Full jitter: the whole range is used, not just its upper half.
    assert min(waits) < 0.5
    assert max(waits) > 3.5
    assert [policy.backoff_cap(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    seed=st.integers(min_value=0, max_value=2**32),
    initial=st.floats(min_value=0.01, max_value=10.0),
    maximum=st.floats(min_value=0.01, max_value=300.0),
)
def test_full_jitter_bounds(attempt: int, seed: int, initial: float, maximum: float) -> None:
    """0 <= wait <= min(maximum, initial * 2**(attempt-1)) for every attempt and seed."""
    policy = RetryPolicy(Retries(initial=initial, maximum=maximum), rng=random.Random(seed))
    cap = min(maximum, initial * 2.0 ** min(attempt - 1, 64))
    assert policy.backoff_cap(attempt) == cap
    wait = policy.wait_for(attempt, APIConnectionError("reset"))
    assert 0.0 <= wait <= cap


async def test_attempts_counted_and_last_error_reraised() -> None:
    """Every attempt is made, each retry reported, and the last error raised as itself."""
    errors = [InternalServerError(f"boom {i}", status_code=503) for i in range(4)]
    fn, sleep = Calls(*errors), FakeSleep()
    events: list[RetryEvent] = []
    policy = RetryPolicy(Retries(attempts=4), rng=random.Random(0))
    with pytest.raises(InternalServerError) as info:
        await retry_call(fn, policy, on_retry=events.append, sleep=sleep)
    assert info.value is errors[3]
    assert fn.count == 4
    assert [e.attempt for e in events] == [1, 2, 3]
    assert [e.exception for e in events] == errors[:3]
    assert [e.wait for e in events] == sleep.waits
    assert all(0 <= w <= policy.backoff_cap(n) for n, w in enumerate(sleep.waits, 1))


@pytest.mark.parametrize(
    "exc",
    [
        status_error(400),
        status_error(401),
        status_error(413),
        status_error(422),
        AmbiguousSubmitError("a.pdf", "connection dropped after upload"),
    ],
)
async def test_no_retry_on_final_errors(exc: BaseException) -> None:
    """A final error is raised after one attempt, with no sleep."""
    fn, sleep = Calls(exc), FakeSleep()
    with pytest.raises(type(exc)) as info:
        await retry_call(fn, RetryPolicy(), sleep=sleep)
    assert info.value is exc
    assert fn.count == 1
    assert sleep.waits == []


@pytest.mark.parametrize(
    "exc",
    [
        APIConnectionError("reset"),
        APITimeoutError("slow"),
        *(status_error(code) for code in (408, 409, 429, 500, 502, 503, 504)),
    ],
)
async def test_retried_then_succeeds(exc: BaseException) -> None:
    """A retryable error is tried again, and the success returned."""
    fn, sleep = Calls(exc, exc), FakeSleep()
    assert await retry_call(fn, RetryPolicy(), sleep=sleep) == "ok"
    assert fn.count == 3
    assert len(sleep.waits) == 2


async def test_retry_after_used_as_the_sleep() -> None:
    """The sleep between attempts is the server's Retry-After."""
    fn, sleep = Calls(RateLimitError("slow down", retry_after=2.5)), FakeSleep()
    events: list[RetryEvent] = []
    assert await retry_call(fn, RetryPolicy(), on_retry=events.append, sleep=sleep) == "ok"
    assert sleep.waits == [2.5]
    assert events[0].wait == 2.5


async def test_custom_retry_if() -> None:
    """retry_if decides: here a connection error is final."""
    fn, sleep = Calls(APIConnectionError("reset")), FakeSleep()
    with pytest.raises(APIConnectionError):
        await retry_call(fn, RetryPolicy(), retry_if=lambda exc: False, sleep=sleep)
    assert fn.count == 1


async def test_retrying_async_for() -> None:
    """policy.retrying() works as tenacity's async-for form."""
    fn, sleep = Calls(APIConnectionError("reset")), FakeSleep()
    async for attempt in RetryPolicy().retrying(sleep=sleep):
        with attempt:
            result = await fn()
    assert result == "ok"
    assert fn.count == 2


async def test_cancellation_is_not_retried() -> None:
    """A cancelled attempt propagates the cancellation at once."""
    calls = 0

    async def hang() -> None:
        nonlocal calls
        calls += 1
        await anyio.sleep(10)

    with anyio.move_on_after(0.05) as scope:
        await retry_call(hang, RetryPolicy())
    assert scope.cancelled_caught
    assert calls == 1


async def test_testing_switch_zeroes_waits() -> None:
    """In testing mode the real sleeps are zero, so a long backoff runs instantly."""
    fn = Calls(*(RateLimitError("slow down", retry_after=60.0) for _ in range(3)))
    policy = RetryPolicy(Retries(attempts=5, initial=30.0, maximum=60.0))
    assert not is_testing()
    with set_testing(True):
        assert is_testing()
        assert policy.wait_for(3, APIConnectionError("reset")) == 0.0
        with anyio.fail_after(1):
            assert await retry_call(fn, policy) == "ok"
    assert not is_testing()
    assert fn.count == 4


async def test_testing_switch_caps_attempts() -> None:
    """set_testing(True, attempts=2) caps every policy at two tries."""
    fn = Calls(*(APIConnectionError("reset") for _ in range(5)))
    with set_testing(True, attempts=2), pytest.raises(APIConnectionError):
        await retry_call(fn, RetryPolicy(Retries(attempts=6)))
    assert fn.count == 2
    assert RetryPolicy(Retries(attempts=6)).attempts == 6


def test_set_testing_plain_call_persists() -> None:
    """Called without `with`, the mode stays until switched off."""
    set_testing(True, attempts=1)
    try:
        assert is_testing()
        assert RetryPolicy().attempts == 1
    finally:
        set_testing(False)
    assert not is_testing()
    assert RetryPolicy().attempts == Retries().attempts


def test_set_testing_rejects_bad_attempts() -> None:
    """attempts below 1 is refused."""
    with pytest.raises(ValueError, match="attempts"):
        set_testing(True, attempts=0)
    assert not is_testing()
