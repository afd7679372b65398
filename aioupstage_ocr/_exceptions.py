"""Every error this package raises, under one root.

```
UpstageOCRError
├── ConfigurationError                 bad settings; no API key (MissingAPIKeyError)
│   └── MissingAPIKeyError
├── DocumentError                      the document's own problem, found before any upload
│   ├── DocumentNotFoundError          missing, or not a regular readable file
│   ├── EmptyDocumentError             zero bytes
│   ├── DocumentTooLargeError          over the byte limit
│   ├── UnsupportedFormatError         not a format the service takes (by magic bytes)
│   ├── TooManyPagesError              over the page limit of the chosen endpoint
│   ├── TooManyPixelsError             a page over the pixel limit
│   ├── PageRangeError                 pages asked for that the document does not have
│   ├── UnreadableDocumentError        corrupt, or password-protected
│   └── ResultMismatchError            a result whose pages do not fit the document (outputs)
├── APIError                           talking to the service went wrong
│   ├── APIConnectionError             no answer: refused, reset, dropped
│   │   └── APITimeoutError            no answer in time
│   ├── APIStatusError                 an HTTP error status (status_code, message, body, request_id)
│   │   ├── BadRequestError            400
│   │   ├── AuthenticationError        401
│   │   ├── PermissionDeniedError      403 from the API: no credit left
│   │   │   └── LinkExpiredError       403 from storage: a download link expired
│   │   ├── NotFoundError              404
│   │   ├── RequestTooLargeError       413
│   │   ├── UnsupportedMediaTypeError  415
│   │   ├── UnprocessableEntityError   422
│   │   ├── RateLimitError             429
│   │   └── InternalServerError        5xx
│   └── ResponseValidationError        a 2xx body that matches no documented shape
├── RequestFailedError                 an async request ended `failed` (request_id, failure_message)
│   └── BatchFailedError               one of its batches failed (batch_id, start_page, end_page)
├── IncompleteResultError              batches do not cover pages 1..total exactly once
│   └── PartialResultError             pages whose batch failed, sent again, still missing
├── AmbiguousSubmitError               a submit may or may not have reached the service
├── PageBudgetError                    not sent: it would take a bulk run past `max_pages`
├── WaitTimeoutError                   `wait(timeout=...)` ran out (also a TimeoutError)
└── OCRTimeoutError                    `ocr(timeout=...)` ran out (request_ids; also a TimeoutError)
```

Every message names what it is about (the file, the request id) and never
contains the API key.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AmbiguousSubmitError",
    "AuthenticationError",
    "BadRequestError",
    "BatchFailedError",
    "ConfigurationError",
    "DocumentError",
    "DocumentNotFoundError",
    "DocumentTooLargeError",
    "EmptyDocumentError",
    "IncompleteResultError",
    "InternalServerError",
    "LinkExpiredError",
    "MissingAPIKeyError",
    "NotFoundError",
    "OCRTimeoutError",
    "PageBudgetError",
    "PageRangeError",
    "PartialResultError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestFailedError",
    "RequestTooLargeError",
    "ResponseValidationError",
    "ResultMismatchError",
    "TooManyPagesError",
    "TooManyPixelsError",
    "UnprocessableEntityError",
    "UnreadableDocumentError",
    "UnsupportedFormatError",
    "UnsupportedMediaTypeError",
    "UpstageOCRError",
    "WaitTimeoutError",
    "status_error_class",
]


class UpstageOCRError(Exception):
    """The root of every error raised by aioupstage_ocr."""


class ConfigurationError(UpstageOCRError):
    """A setting is missing or out of range."""


class MissingAPIKeyError(ConfigurationError):
    """No API key was given and `UPSTAGE_API_KEY` is not set."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "no API key: pass api_key=... or set the UPSTAGE_API_KEY environment variable "
            "(or run against the bundled emulator, which takes any key)"
        )


class DocumentError(UpstageOCRError):
    """A document the service would reject, found before uploading it.

    `document` names the file (its path, or the filename given with bytes);
    `reason` says what is wrong, in words a user can act on.
    """

    def __init__(self, document: str, reason: str) -> None:
        self.document = document
        self.reason = reason
        super().__init__(f"{document}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.document, self.reason))


class DocumentNotFoundError(DocumentError):
    """The path does not exist, is not a regular file, or cannot be read."""


class EmptyDocumentError(DocumentError):
    """The document has no bytes."""


class DocumentTooLargeError(DocumentError):
    """The document is over the byte limit."""


class UnsupportedFormatError(DocumentError):
    """The bytes are not a format the service accepts (judged by content, not name)."""


class TooManyPagesError(DocumentError):
    """More pages than the chosen endpoint takes."""


class TooManyPixelsError(DocumentError):
    """A page has more pixels than the service takes."""


class PageRangeError(DocumentError):
    """Pages asked for (`pages=`, `--pages`) that the document does not have, or cannot give."""


class UnreadableDocumentError(DocumentError):
    """The document is corrupt or password-protected: its pages cannot be read."""


class ResultMismatchError(DocumentError):
    """An OCR result does not fit the document it is laid over (page count, page shape).

    Raised when an output is made from a document and a result (a searchable
    PDF), not before an upload.
    """


class APIError(UpstageOCRError):
    """Talking to the service (or its storage) failed."""


class APIConnectionError(APIError):
    """The connection failed or dropped before an answer came back."""


class APITimeoutError(APIConnectionError, TimeoutError):
    """No answer within the configured timeout."""


class APIStatusError(APIError):
    """The service answered with an HTTP error status.

    `message` comes from either documented error body (`{"error": {"message"}}` or
    `{"code", "message"}`), falling back to the raw text; `body` is the parsed
    JSON (or the text) as received; `retry_after` is the server's `Retry-After`
    in seconds, when it sent one (429, 503).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: object = None,
        request_id: str | None = None,
        url: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.body = body
        self.request_id = request_id
        self.url = url
        self.code = code
        self.retry_after = retry_after
        where = f" (request {request_id})" if request_id else ""
        super().__init__(f"HTTP {status_code}{where}: {message}")


class BadRequestError(APIStatusError):
    """400: a bad model name, no document, a malformed form."""


class AuthenticationError(APIStatusError):
    """401: the API key was refused."""


class PermissionDeniedError(APIStatusError):
    """403: no credit left (from the API), or an expired link (`LinkExpiredError`)."""


class LinkExpiredError(PermissionDeniedError):
    """403 from object storage: a batch's signed download link expired (or was refused).

    Raised by downloads only; the poller fetches a fresh link from the status.
    A plain `PermissionDeniedError` always comes from the API itself.
    """


class NotFoundError(APIStatusError):
    """404: no such request id or route."""


class RequestTooLargeError(APIStatusError):
    """413: too many bytes or pages for this endpoint."""


class UnsupportedMediaTypeError(APIStatusError):
    """415: the service does not take this format."""


class UnprocessableEntityError(APIStatusError):
    """422: the service could not read the document."""


class RateLimitError(APIStatusError):
    """429: over the account's rate limit."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 429,
        body: object = None,
        request_id: str | None = None,
        url: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            body=body,
            request_id=request_id,
            url=url,
            code=code,
            retry_after=retry_after,
        )


class InternalServerError(APIStatusError):
    """5xx: the service failed; usually worth retrying."""


class ResponseValidationError(APIError):
    """A successful answer that matches none of the documented shapes."""

    def __init__(self, message: str, *, body: object = None) -> None:
        self.body = body
        super().__init__(message)


class RequestFailedError(UpstageOCRError):
    """An async request ended `failed`; `failure_message` is the service's reason."""

    def __init__(self, request_id: str, failure_message: str) -> None:
        self.request_id = request_id
        self.failure_message = failure_message
        super().__init__(f"request {request_id} failed: {failure_message or 'no reason given'}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.request_id, self.failure_message))


class BatchFailedError(RequestFailedError):
    """One batch of an async request failed (the first, when several did).

    `failed_ranges` holds every failed batch's `(start_page, end_page)` and
    `completed` the `(start_page, end_page, OCRResult)` of the batches that did
    come back, with `total_pages`, so the failed pages alone can be sent again
    (the client does; see `AsyncUpstageOCR.ocr`). Both are empty when the
    error was raised without them.
    """

    def __init__(
        self,
        request_id: str,
        failure_message: str,
        *,
        batch_id: int,
        start_page: int,
        end_page: int,
    ) -> None:
        self.batch_id = batch_id
        self.start_page = start_page
        self.end_page = end_page
        self.failed_ranges: tuple[tuple[int, int], ...] = ()
        self.completed: tuple[tuple[int, int, Any], ...] = ()
        self.total_pages = 0
        super().__init__(request_id, failure_message)
        reason = failure_message or "no reason given"
        pages = f"pages {start_page}-{end_page}"
        self.args = (f"request {request_id}: batch {batch_id} ({pages}) failed: {reason}",)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_batch_failed,
            (self.request_id, self.failure_message, self.batch_id, self.start_page, self.end_page),
        )


def _rebuild_batch_failed(
    request_id: str, failure_message: str, batch_id: int, start_page: int, end_page: int
) -> BatchFailedError:
    return BatchFailedError(
        request_id, failure_message, batch_id=batch_id, start_page=start_page, end_page=end_page
    )


class IncompleteResultError(UpstageOCRError):
    """The batches of a request leave a gap or overlap in pages 1..total_pages."""


class PartialResultError(IncompleteResultError):
    """Pages did not come back: their batch failed, and so did every try to send them again.

    `missing_pages` names them (pages of the original document, from 1);
    `partial` is the `OCRResult` of the pages that did come back, in order,
    with `sourcePages` and `missingPages` in its `raw` (what `--allow-partial`
    writes). Never a silently shorter document: this is an error.
    """

    def __init__(self, document: str, missing_pages: tuple[int, ...], partial: Any, reason: str):
        self.document = document
        self.missing_pages = missing_pages
        self.partial = partial
        super().__init__(f"{document}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_partial, (self.document, self.missing_pages, self.args[0]))


def _rebuild_partial(
    document: str, missing_pages: tuple[int, ...], message: str
) -> PartialResultError:
    error = PartialResultError(document, missing_pages, None, "")
    error.args = (message,)
    return error


class AmbiguousSubmitError(APIError):
    """A submission failed in a way that leaves open whether the service accepted it.

    Sending it again could pay twice; `candidates` lists request ids created in
    the window that might be it (possibly none).
    """

    def __init__(self, document: str, reason: str, *, candidates: tuple[str, ...] = ()) -> None:
        self.document = document
        self.reason = reason
        self.candidates = candidates
        super().__init__(f"{document}: {reason}")


class PageBudgetError(UpstageOCRError):
    """A document a bulk run did not send: its pages would take the run past `max_pages`.

    Once one does not fit, the run sends no more documents (they get this too);
    nothing was uploaded for them, so a later run can send them.
    """

    def __init__(self, document: str, reason: str) -> None:
        self.document = document
        self.reason = reason
        super().__init__(f"{document}: not sent: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.document, self.reason))


class WaitTimeoutError(UpstageOCRError, TimeoutError):
    """`wait(..., timeout=...)` ran out before the request completed; the request goes on."""

    def __init__(self, request_id: str, timeout: float) -> None:
        self.request_id = request_id
        self.timeout = timeout
        super().__init__(f"request {request_id} not complete after {timeout:g} s")


class OCRTimeoutError(UpstageOCRError, TimeoutError):
    """`ocr(..., timeout=...)` ran out: one deadline for the whole call.

    `request_ids` are the async requests the service had accepted for the
    document by then (several for a document sent in parts; empty when none
    was): they go on, and `client.wait(request_id)` collects one later without
    paying again. `request_id` is the first of them, or None.
    """

    def __init__(self, document: str, timeout: float, request_ids: tuple[str, ...] = ()) -> None:
        self.document = document
        self.timeout = timeout
        self.request_ids = tuple(request_ids)
        self.request_id = self.request_ids[0] if self.request_ids else None
        if self.request_ids:
            told = f"request {', '.join(self.request_ids)} goes on: wait() for it"
        else:
            told = "no async request was accepted for it"
        super().__init__(f"{document}: not done after {timeout:g} s; {told}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.document, self.timeout, self.request_ids))


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: RequestTooLargeError,
    415: UnsupportedMediaTypeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """The exception class for an HTTP error status."""
    if status_code >= 500:
        return InternalServerError
    return _STATUS_CLASSES.get(status_code, APIStatusError)
