"""aioupstage_ocr: an asyncio-native client for the Upstage OCR API.

```python
from aioupstage_ocr import AsyncUpstageOCR

async with AsyncUpstageOCR() as client:  # key from UPSTAGE_API_KEY
    result = await client.ocr("scan.pdf")
```
"""

from __future__ import annotations

from ._bulk import BulkEvent, BulkItem, BulkRun, BulkStats, Resume, Submission
from ._client import AsyncUpstageOCR
from ._config import (
    DocumentLimits,
    Limits,
    Polling,
    RateLimit,
    Retries,
    Timeouts,
)
from ._exceptions import (
    AmbiguousSubmitError,
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BatchFailedError,
    ConfigurationError,
    DocumentError,
    DocumentNotFoundError,
    DocumentTooLargeError,
    EmptyDocumentError,
    IncompleteResultError,
    InternalServerError,
    LinkExpiredError,
    MissingAPIKeyError,
    NotFoundError,
    OCRTimeoutError,
    PageBudgetError,
    PageRangeError,
    PartialResultError,
    PermissionDeniedError,
    RateLimitError,
    RequestFailedError,
    RequestTooLargeError,
    ResponseValidationError,
    ResultMismatchError,
    TooManyPagesError,
    TooManyPixelsError,
    UnprocessableEntityError,
    UnreadableDocumentError,
    UnsupportedFormatError,
    UnsupportedMediaTypeError,
    UpstageOCRError,
    WaitTimeoutError,
)
from ._formats import Format
from ._models import (
    BatchStatus,
    BoundingBox,
    OCRResult,
    Page,
    RequestStatus,
    RequestSummary,
    Status,
    Word,
    merge_batches,
    parse_request_list,
    parse_request_status,
    parse_result,
)
from ._outputs import searchable_pdf, write_searchable_pdf
from ._pages import format_pages, parse_pages
from ._poller import Progress
from ._preflight import Plan

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AmbiguousSubmitError",
    "AsyncUpstageOCR",
    "AuthenticationError",
    "BadRequestError",
    "BatchFailedError",
    "BatchStatus",
    "BoundingBox",
    "BulkEvent",
    "BulkItem",
    "BulkRun",
    "BulkStats",
    "ConfigurationError",
    "DocumentError",
    "DocumentLimits",
    "DocumentNotFoundError",
    "DocumentTooLargeError",
    "EmptyDocumentError",
    "Format",
    "IncompleteResultError",
    "InternalServerError",
    "Limits",
    "LinkExpiredError",
    "MissingAPIKeyError",
    "NotFoundError",
    "OCRResult",
    "OCRTimeoutError",
    "Page",
    "PageBudgetError",
    "PageRangeError",
    "PartialResultError",
    "PermissionDeniedError",
    "Plan",
    "Polling",
    "Progress",
    "RateLimit",
    "RateLimitError",
    "RequestFailedError",
    "RequestStatus",
    "RequestSummary",
    "RequestTooLargeError",
    "ResponseValidationError",
    "ResultMismatchError",
    "Resume",
    "Retries",
    "Status",
    "Submission",
    "Timeouts",
    "TooManyPagesError",
    "TooManyPixelsError",
    "UnprocessableEntityError",
    "UnreadableDocumentError",
    "UnsupportedFormatError",
    "UnsupportedMediaTypeError",
    "UpstageOCRError",
    "WaitTimeoutError",
    "Word",
    "__version__",
    "format_pages",
    "merge_batches",
    "parse_pages",
    "parse_request_list",
    "parse_request_status",
    "parse_result",
    "searchable_pdf",
    "write_searchable_pdf",
]
