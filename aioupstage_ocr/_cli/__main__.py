"""`python -m aioupstage_ocr._cli`: the same command line as `aioupstage-ocr`."""

from __future__ import annotations

import sys

from ._main import main

if __name__ == "__main__":
    sys.exit(main())
