"""`_reconcile`: which listed request a submit of unknown fate made, decided without I/O."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from aioupstage_ocr import RequestSummary
from aioupstage_ocr._reconcile import (
    MARGIN,
    MARGIN_BLIND,
    Window,
    candidates,
    margin,
    pages_fit,
    pair,
)

T0 = 1_750_000_000.0


def listed(request_id: str, at: float | None) -> RequestSummary:
    stamp = None if at is None else datetime.fromtimestamp(at, UTC).isoformat()
    return RequestSummary(request_id, "completed", requested_at=stamp)


def test_one_margin_for_both_callers() -> None:
    assert margin(True) == MARGIN == 5.0
    assert margin(False) == MARGIN_BLIND == 300.0


def test_window_is_shifted_to_the_server_clock_and_widened() -> None:
    window = Window.of(T0, T0 + 10, offset=-3.0, clock_known=True)
    assert (window.low, window.high) == (T0 - 3 - MARGIN, T0 + 7 + MARGIN)
    blind = Window.of(T0, T0 + 10, offset=0.0, clock_known=False)
    assert (blind.low, blind.high) == (T0 - MARGIN_BLIND, T0 + 10 + MARGIN_BLIND)


def test_candidates_are_unknown_requests_in_the_window() -> None:
    window = Window.of(T0, T0 + 2, offset=0.0, clock_known=True)
    summaries = [
        listed("before", T0 - MARGIN - 1),
        listed("edge", T0 - MARGIN),
        listed("inside", T0 + 1),
        listed("known", T0 + 1),
        listed("unstamped", None),  # no time: it may be it
        listed("after", T0 + 2 + MARGIN + 1),
    ]
    assert candidates(summaries, window, known={"known"}) == ["edge", "inside", "unstamped"]


@given(st.one_of(st.none(), st.integers(1, 50)), st.one_of(st.none(), st.integers(0, 50)))
def test_pages_rule_out_only_when_both_known_and_different(
    document: int | None, request: int | None
) -> None:
    fits = pages_fit(document, request)
    assert fits == (document is None or not request or request == document)


def test_pairing_takes_only_what_is_certain() -> None:
    adopted, left = pair({"a": {"1"}, "b": {"2", "3"}, "c": {"3"}, "d": {"4", "5"}, "e": {"4"}})
    assert adopted == {"a": "1"}  # 1 fits a alone, and a fits 1 alone
    # b could be 2 or 3, and 3 could be b's or c's; 4 could be d's or e's: no guess
    assert left == {"b": {"2", "3"}, "c": {"3"}, "d": {"4", "5"}, "e": {"4"}}


def test_pairing_never_shares_a_request() -> None:
    adopted, left = pair({"a": {"1"}, "b": {"1"}})
    assert adopted == {}
    assert left == {"a": {"1"}, "b": {"1"}}


fits_strategy = st.dictionaries(
    st.sampled_from("abcdefgh"), st.sets(st.sampled_from("12345678"), max_size=4), max_size=8
)


@given(fits_strategy)
def test_pairing_is_sound(fits: dict[str, set[str]]) -> None:
    """Each pair comes from the fits, no request is paired twice or left to another."""
    adopted, left = pair(fits)
    assert set(adopted) | set(left) == set(fits)
    assert not set(adopted) & set(left)
    assert len(set(adopted.values())) == len(adopted)
    for key, request_id in adopted.items():
        assert request_id in fits[key]
    for key, ids in left.items():
        assert ids <= fits[key]
        assert not ids & set(adopted.values())
        assert len(ids) != 1 or any(ids <= other for k, other in left.items() if k != key)


@given(st.permutations(list("12345")))
def test_a_one_to_one_fit_is_adopted_whole(ids: list[str]) -> None:
    fits = {key: {request_id} for key, request_id in zip("abcde", ids, strict=True)}
    adopted, left = pair(fits)
    assert adopted == {key: next(iter(value)) for key, value in fits.items()}
    assert left == {}
