"""Test your code against an emulator of the Upstage OCR service, offline.

```python
from aioupstage_ocr.testing import EmulatorConfig, UpstageEmulator, make_pdf

async with UpstageEmulator(EmulatorConfig(rps=3, error_rate=0.1, seed=7)) as emulator:
    ...  # point the client at emulator.base_url; assert on emulator.stats
```

It answers in the live service's shape, as its recorded answers have it;
`EmulatorConfig(recordings="folder/")` replays real answers (`<stem>.response.json`
beside each document) for the documents recorded there.

`EmulatorThread` runs it on a thread of its own, for sync code and any event loop:

```python
with EmulatorThread(rps=3) as emulator:
    ...  # any HTTP client, any thread; emulator.stats, .configure(), .reset() hop over
```

With pytest, the `upstage_emulator` fixture gives a running emulator, reset per
test, and `upstage_client` a client on it; `set_testing(True)` zeroes retry waits.
"""

from __future__ import annotations

from .._retry import set_testing
from ._config import EmulatorConfig
from ._documents import make_image, make_pdf, make_tiff, page_text
from ._emulator import UpstageEmulator
from ._ocr import emulated_text
from ._stats import EmulatorStats
from ._thread import EmulatorThread, LiveStats

__all__ = [
    "EmulatorConfig",
    "EmulatorStats",
    "EmulatorThread",
    "LiveStats",
    "UpstageEmulator",
    "emulated_text",
    "make_image",
    "make_pdf",
    "make_tiff",
    "page_text",
    "set_testing",
]
