"""`aioupstage_ocr.ray` without Ray says what to install."""

from __future__ import annotations

import subprocess
import sys


def test_import_without_ray_names_the_extra() -> None:
    code = "import sys; sys.modules['ray'] = None; import aioupstage_ocr.ray"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "pip install 'aioupstage-ocr[ray]'" in done.stderr
    # The rest of the package imports without Ray.
    code = "import sys; sys.modules['ray'] = None; import aioupstage_ocr, aioupstage_ocr._storage"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
