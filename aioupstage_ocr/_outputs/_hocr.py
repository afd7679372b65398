"""hOCR 1.2: an XHTML page per result page, with blocks, lines and words boxed in pixels.

```
div.ocr_page    bbox 0 0 W H; ppageno N (from 0)
  div.ocr_carea   bbox              blocks (`_lines.group_blocks`)
    p.ocr_par       bbox
      span.ocr_line   bbox; textangle A (where the text is rotated)
        span.ocrx_word  bbox; x_wconf C (0..100)
```

Boxes are the axis-aligned boxes around the served pixel vertices; a page of
unknown pixel size is declared `bbox 0 0 10000 10000` and its words placed
on that nominal page (their 0..1 coordinates times 10000). Words with no
text are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._lines import Box, Placed, enclosing, group_blocks, group_lines, place
from ._xml import escape, software_version

if TYPE_CHECKING:
    from .._models import OCRResult

__all__ = ["to_hocr"]

_CAPABILITIES = "ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf"


def _bbox(box: Box) -> str:
    x0, y0, x1, y1 = box
    return f"bbox {round(x0)} {round(y0)} {round(x1)} {round(y1)}"


def _line_title(line: Sequence[Placed]) -> str:
    title = _bbox(enclosing(line))
    angle = sum(w.angle for w in line) / len(line)
    if abs(angle) >= 1:
        title += f"; textangle {round(angle)}"
    return title


def to_hocr(result: OCRResult, *, image: str | None = None) -> str:
    """`result` as an hOCR 1.2 XHTML document; `image` names the source in each page's title."""
    system = f"aioupstage-ocr {software_version()}"
    if result.model:
        system += f" (Upstage {result.model})"
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"',
        '    "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">',
        '<html xmlns="http://www.w3.org/1999/xhtml">',
        "<head>",
        f"<title>{escape(image or 'OCR result')}</title>",
        '<meta http-equiv="Content-Type" content="text/html; charset=utf-8"/>',
        f'<meta name="ocr-system" content="{escape(system)}"/>',
        f'<meta name="ocr-capabilities" content="{_CAPABILITIES}"/>',
        f'<meta name="ocr-number-of-pages" content="{result.num_pages}"/>',
        "</head>",
        "<body>",
    ]
    source = f'image "{image}"; ' if image else ""
    for page in result.pages:
        placed = place(page)
        n = page.index + 1
        page_box = _bbox((0, 0, placed.width, placed.height))
        out.append(
            f'<div class="ocr_page" id="page_{n}" '
            f'title="{escape(source)}{page_box}; ppageno {page.index}">'
        )
        blocks = group_blocks(group_lines(placed.words))
        words = lines = 0
        for b, block in enumerate(blocks, 1):
            box = _bbox(enclosing([w for line in block for w in line]))
            out.append(f'<div class="ocr_carea" id="block_{n}_{b}" title="{box}">')
            out.append(f'<p class="ocr_par" id="par_{n}_{b}" title="{box}">')
            for line in block:
                lines += 1
                out.append(
                    f'<span class="ocr_line" id="line_{n}_{lines}" title="{_line_title(line)}">'
                )
                for word in line:
                    words += 1
                    title = _bbox(word.box)
                    if word.confidence is not None:
                        title += f"; x_wconf {round(max(0.0, min(1.0, word.confidence)) * 100)}"
                    out.append(
                        f'<span class="ocrx_word" id="word_{n}_{words}" title="{title}">'
                        f"{escape(word.text)}</span>"
                    )
                out.append("</span>")
            out.append("</p>")
            out.append("</div>")
        out.append("</div>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)
