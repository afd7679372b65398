"""OCR as a stage of a Ray Data pipeline: `ds.map_batches(OCRStage, ...)` or `ocr_dataset(ds)`.

```python
import ray
from aioupstage_ocr.ray import OCRStage, list_documents, ocr_dataset

ds = ray.data.from_items([{"path": url} for url in list_documents("s3://bucket/scans")])
out = ocr_dataset(ds, output="s3://bucket/ocr", concurrency=4)
for row in out.iter_rows():
    print(row["path"], row["status"], row["output"])
```

- `OCRStage`: a callable class for `Dataset.map_batches` (async `__call__`);
  one `AsyncUpstageOCR` per actor, created in the actor's own event loop; the
  documents of a batch run at once under that client's limits.
- Input columns: `path` (a URL of any store fsspec knows, or a local path),
  or `bytes` with `name` (or `path`, as `ray.data.read_binary_files(...,
  include_paths=True)` gives). Output columns: `path`, `status` (`ok` |
  `failed`), `pages`, `request_id`, `text`, `result` (the result's JSON),
  `error`, `output` (the URL written, when `output=` is given).
- One bad document is a row with `status="failed"`, never a failed batch.

Needs the `[ray]` extra (and `[s3]` for object storage).
"""

from __future__ import annotations

try:
    import ray as _ray
    import ray.data as _ray_data
except ImportError as exc:  # pragma: no cover - depends on the extras installed
    raise ImportError(
        "aioupstage_ocr.ray needs Ray Data: pip install 'aioupstage-ocr[ray]'"
    ) from exc

from ._stage import OUTPUT_SCHEMA, OCRStage, list_documents, ocr_dataset

del _ray, _ray_data

__all__ = ["OUTPUT_SCHEMA", "OCRStage", "list_documents", "ocr_dataset"]
