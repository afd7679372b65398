"""`python -m benchmarks._child MODULE:FUNCTION PARAMS_JSON`: one measured run, in its own process.

Calls `benchmarks.MODULE.FUNCTION(params)`, which returns its figures as a
dict, adds the process's own (`maxrss` bytes, `cpu_total` seconds, `threads`)
and prints them as one `BENCH-RESULT {json}` line on stdout.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def main(argv: list[str]) -> int:
    """Run the named function; 0 once its figures are printed."""
    if len(argv) != 2 or ":" not in argv[0]:
        sys.stderr.write(__doc__ or "")
        return 2
    module_name, function_name = argv[0].split(":", 1)
    module = importlib.import_module(f"benchmarks.{module_name}")
    function: Callable[[dict[str, Any]], dict[str, Any]] = getattr(module, function_name)
    params = json.loads(argv[1])
    started = time.perf_counter()
    figures = function(params)
    figures.setdefault("wall_s", time.perf_counter() - started)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures["maxrss"] = usage.ru_maxrss * 1024  # KiB on Linux
    figures["cpu_total"] = usage.ru_utime + usage.ru_stime
    figures["threads_at_end"] = threading.active_count()
    sys.stdout.write("BENCH-RESULT " + json.dumps(figures) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
