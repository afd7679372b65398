"""`python -m aioupstage_ocr`: the same command line as `aioupstage-ocr`."""

from __future__ import annotations

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
