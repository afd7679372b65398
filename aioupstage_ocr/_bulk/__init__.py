"""Bulk runs: thousands of documents at the pace the service allows, as each finishes.

```python
async with client.ocr_many(paths, ordered=False, on_event=show) as run:
    async for item in run:            # a BulkItem: source, result or error, request_id
        ...
print(run.stats, run.open_requests)   # counters; requests not yet handed over
```

One pipeline task owns everything a run starts (a task group inside one
`PollScheduler`); the iterator only reads finished items from a memory
stream, so nothing yields from inside a task group. The end of the items, an
error, a cancellation, `async with` and `aclose()` stop that task and wait for
it; a `break` out of a bare loop drops the iterator, which stops it at once
(and the client's `aclose()` waits for it): no task, connection or open file
outlives the run.

```
input --> feeder --jobs--> preflight (2-4 tasks) --ready--> submit (max_open_documents tasks)
          (window)         up to 8 per worker-thread  (async  sync: the answer is the result
                           trip; identical files wait  and    async: PollScheduler.track,
                           for the first one           most   one waiting task per request
                                                       pages first)
      --> items (reordered when `ordered`) --> your loop
```

Bounds, whatever the number of inputs:
- `max_pending` documents are taken from the input and not yet handed to you
  (waiting, being prepared or sent, open at the service, or finished and not
  yet taken, the reorder buffer of `ordered=True` included): a slow consumer
  holds the input back;
- `Limits.max_open_documents` documents are being sent at once, and at most
  a few batches of 8 are being prepared (one file open per preflight thread);
- every HTTP request passes the client's one concurrency limit and one pacer
  (RPS, PPM, `Retry-After` pauses, or the pace found from 429s), polls included;
  the one `PollScheduler` polls every open request from a timer heap.

A failure that every document would meet the same way (a refused key, no
credit left, a closed client, a journal hook that failed) stops the run: the
iterator hands out what had finished, then raises that one error, and
`open_requests` lists what was submitted and not handed over. Until an
answer has shown that the key works, only a wave of documents goes out (4,
then 32 once a request list, sent beside them, showed the key valid), so a
wrong key costs 5 requests and no credit at most 33, not thousands, and the
second upload never waits for the first one's OCR.

The parts, each in its own module:

- `_types`: `Resume`, `Submission`, `BulkItem` (what goes in and comes out);
- `_events`: `BulkEvent`, `BulkStats`; `_counters`: the stats and `on_event`;
- `_feed`: reading the input lazily; `_window`: the `max_pending` window;
- `_prepare`: preflight in batches; `_dedupe`: identical documents once;
- `_ready`: prepared documents waiting for a sender, longest work first;
- `_send`: one document through the key gate (`_gate`), the journal hooks and
  the `Engine`; `_outbox`: items out, reordered; `_items`: the loop's iterator;
- `_jobs`: a document's state on its way; `_run`: `BulkRun`, the facade that
  joins them, with its lifecycle (`RunState`).
"""

from __future__ import annotations

from ._events import BulkEvent, BulkStats, EventKind
from ._run import DEFAULT_MAX_PENDING, BulkRun, RunState
from ._types import BulkItem, KnownHook, Resume, Submission, SubmitHook

__all__ = [
    "DEFAULT_MAX_PENDING",
    "BulkEvent",
    "BulkItem",
    "BulkRun",
    "BulkStats",
    "EventKind",
    "KnownHook",
    "Resume",
    "RunState",
    "Submission",
    "SubmitHook",
]
