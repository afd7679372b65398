"""The `aioupstage-ocr` command line.

```
aioupstage-ocr ocr INPUT... [-o DIR] [--mode auto|sync|async] [--concurrency N]
                   [--rps R] [--ppm P] [--report FILE] [--no-resume]
                   [--format json,txt,hocr,alto,pdf] [--base-url URL] [--emulator] [--quiet]
aioupstage-ocr convert RESULT.ocr.json... --format ... [--document ORIGINAL] [-o DIR]
aioupstage-ocr status REQUEST_ID          one status, as JSON
aioupstage-ocr fetch REQUEST_ID [-o FILE] wait, download, merge; JSON out
aioupstage-ocr requests                   the service's list of past requests, as JSON
aioupstage-ocr emulator [options]         the bundled emulator, until interrupted
aioupstage-ocr demo [-o DIR]              the whole pipeline on the emulator
```

Results and output paths go to stdout; progress, errors and summaries to
stderr. Exit codes: 0 all ok, 1 a document or request failed, 2 a usage or
configuration error (bad option, no API key), 130 interrupted (Ctrl-C).

- `_common`: exit codes, the error line, the missing-key message;
- `_main`: the argument parser, `main`, and the one-request commands
  (`status`, `fetch`, `requests`);
- `_ocr`: the `ocr` command (a bulk run with its journal, outputs, report);
- `_convert`: the `convert` command (outputs from saved results, offline) and
  the `--format` argument both commands take;
- `_discovery`: its inputs, found and hashed by a thread ahead of the run;
- `_resume`: what its journal says about an input, and the start-up check of
  submits a stopped run left open;
- `_display`: what it shows (bar, log lines, summary) and `fetch`'s progress.

The emulator (`aioupstage_ocr.testing`, which loads `aiohttp.web`) is
imported only by `emulator`, `demo` and `ocr --emulator`.
"""

from __future__ import annotations

from ._common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from ._main import build_parser, main

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]
