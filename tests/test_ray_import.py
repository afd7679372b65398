"""Optional extras: `aioupstage_ocr.ray` without Ray names what to install; the core loads none."""

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


def test_the_core_loads_no_extra() -> None:
    """`import aioupstage_ocr` and a local document load neither fsspec, s3fs nor Ray."""
    code = (
        "import sys\n"
        "import aioupstage_ocr\n"
        "from aioupstage_ocr._preflight import prepare\n"
        "from aioupstage_ocr.testing import make_pdf\n"
        "prepare(make_pdf(1), filename='a.pdf')\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert "aioupstage_ocr._storage" in loaded
    assert not {"fsspec", "s3fs", "ray", "pyarrow"} & loaded
