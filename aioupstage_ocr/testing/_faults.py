"""Seeded chance and the emulator's rate limiter.

Every random choice of the emulator is a pure function of the seed and a key
naming the event (a route, a document's hash, how many times it was seen), so
the same run against the same seed meets the same faults, whatever the order
in which concurrent requests happen to arrive.
"""

from __future__ import annotations

import hashlib
import math
import random
import uuid
from collections.abc import Sequence
from typing import TypeVar

__all__ = ["GCRA", "Dice", "retry_after_seconds"]

T = TypeVar("T")

_SCALE = float(1 << 64)


class Dice:
    """Keyed, seeded randomness: `roll(*key)` is the same number for the same seed and key."""

    def __init__(self, seed: int) -> None:
        self._salt = hashlib.sha256(f"aioupstage-ocr emulator {seed}".encode()).digest()

    def _digest(self, key: tuple[object, ...], size: int) -> bytes:
        return hashlib.blake2b(repr(key).encode(), key=self._salt, digest_size=size).digest()

    def roll(self, *key: object) -> float:
        """A number in [0, 1)."""
        return int.from_bytes(self._digest(key, 8), "big") / _SCALE

    def chance(self, rate: float, *key: object) -> bool:
        """True with probability `rate`."""
        return rate > 0 and self.roll(*key) < rate

    def pick(self, options: Sequence[T], *key: object) -> T:
        """One of `options`."""
        return options[int(self.roll(*key) * len(options))]

    def rng(self, *key: object) -> random.Random:
        """A `random.Random` seeded from the key (for shuffles)."""
        return random.Random(int.from_bytes(self._digest(key, 8), "big"))

    def uuid(self, *key: object) -> str:
        """A version-4 shaped UUID string."""
        return str(uuid.UUID(bytes=self._digest(key, 16), version=4))

    def jitter(self, seconds: float, fraction: float, *key: object) -> float:
        """`seconds` moved by up to +/- `fraction` of itself."""
        if fraction <= 0 or seconds <= 0:
            return seconds
        return max(0.0, seconds * (1 + fraction * (2 * self.roll(*key) - 1)))


class GCRA:
    """Generic cell rate algorithm: `rate` units per second, bursts of up to `burst` units.

    The same admission as a token bucket of `burst` tokens refilled at `rate`,
    kept as one number (the theoretical arrival time). A request that would
    arrive too early is refused and leaves the state untouched.
    """

    def __init__(self, rate: float, burst: float) -> None:
        self._interval = 1.0 / rate
        self._burst = burst
        self._tolerance = burst * self._interval
        self._tat = 0.0

    def acquire(self, now: float, cost: float = 1.0) -> float:
        """0.0 when admitted (and counted), else seconds until it would be."""
        cost = min(cost, self._burst)  # a request larger than a burst passes on a full bucket
        tat = max(self._tat, now)
        new_tat = tat + cost * self._interval
        allowed_at = new_tat - self._tolerance
        if allowed_at > now + 1e-9:
            return allowed_at - now
        self._tat = new_tat
        return 0.0

    def remaining(self, now: float) -> int:
        """Units that would be admitted at once now (the burst left)."""
        return max(0, math.floor(self._burst - max(self._tat - now, 0.0) / self._interval + 1e-9))

    def reset(self, now: float) -> float:
        """Seconds until the whole burst is available again."""
        return max(self._tat - now, 0.0)


def retry_after_seconds(wait: float) -> int:
    """The `Retry-After` value for a wait: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait))
