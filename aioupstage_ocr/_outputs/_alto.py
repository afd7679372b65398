"""ALTO 4.4 XML: `Page`/`PrintSpace`/`TextBlock`/`TextLine`/`String`, positions in pixels.

Every `String` has `CONTENT`, `HPOS`/`VPOS`/`WIDTH`/`HEIGHT` (the axis-aligned
box around the word's served pixel vertices) and `WC` (the word confidence,
0..1) where the service gave one; an `SP` stands between two words of a line,
positioned over the gap where the second word starts right of the first.
Blocks and lines come from the words' geometry (`_lines`). A page of unknown
pixel size is written as a 10000 x 10000 page with its words' 0..1
coordinates times 10000. Words with no text are left out. Valid against the
published `alto-4-4.xsd`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._lines import Box, Placed, enclosing, group_blocks, group_lines, place
from ._xml import escape, software_version

if TYPE_CHECKING:
    from .._models import OCRResult

__all__ = ["to_alto"]

_HEAD = (
    '<alto xmlns="http://www.loc.gov/standards/alto/ns-v4#" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://www.loc.gov/standards/alto/ns-v4# '
    'http://www.loc.gov/alto/v4/alto-4-4.xsd" SCHEMAVERSION="4.4">'
)


def _number(value: float) -> str:
    return str(round(value))


def _position(box: Box) -> str:
    x0, y0, x1, y1 = box
    return (
        f'HPOS="{_number(x0)}" VPOS="{_number(y0)}" '
        f'WIDTH="{_number(x1 - x0)}" HEIGHT="{_number(y1 - y0)}"'
    )


def _line(out: list[str], line: Sequence[Placed], line_id: str) -> None:
    out.append(f'<TextLine ID="{line_id}" {_position(enclosing(line))}>')
    for k, word in enumerate(line):
        if k:
            previous = line[k - 1].box
            gap = word.box[0] - previous[2]
            if gap > 0:
                top = min(previous[1], word.box[1])
                out.append(
                    f'<SP WIDTH="{_number(gap)}" HPOS="{_number(previous[2])}" '
                    f'VPOS="{_number(top)}"/>'
                )
            else:
                out.append("<SP/>")
        wc = ""
        if word.confidence is not None:
            wc = f' WC="{max(0.0, min(1.0, word.confidence)):.4f}"'
        out.append(
            f'<String ID="{line_id}_w{k + 1}" CONTENT="{escape(word.text)}" '
            f"{_position(word.box)}{wc}/>"
        )
    out.append("</TextLine>")


def to_alto(result: OCRResult, *, image: str | None = None) -> str:
    """`result` as an ALTO 4.4 document; `image` is the source file named in `Description`."""
    version = escape(software_version())
    software = [
        "<softwareCreator>Upstage</softwareCreator>",
        f"<softwareName>Upstage Document OCR via aioupstage-ocr {version}</softwareName>",
    ]
    if result.model:
        software.append(f"<softwareVersion>{escape(result.model)}</softwareVersion>")
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        _HEAD,
        "<Description>",
        "<MeasurementUnit>pixel</MeasurementUnit>",
    ]
    if image:
        out.append(
            f"<sourceImageInformation><fileName>{escape(image)}</fileName></sourceImageInformation>"
        )
    out += [
        '<Processing ID="ocr">',
        "<processingCategory>contentGeneration</processingCategory>",
        "<processingSoftware>",
        *software,
        "</processingSoftware>",
        "</Processing>",
        "</Description>",
        "<Layout>",
    ]
    for page in result.pages:
        placed = place(page)
        n = page.index + 1
        size = f'WIDTH="{placed.width}" HEIGHT="{placed.height}"'
        confidence = ""
        if page.confidence is not None:
            confidence = f' PC="{max(0.0, min(1.0, page.confidence)):.4f}"'
        out.append(f'<Page ID="p{n}" PHYSICAL_IMG_NR="{n}" {size}{confidence} PROCESSING="ocr">')
        out.append(f'<PrintSpace HPOS="0" VPOS="0" {size}>')
        lines = 0
        for b, block in enumerate(group_blocks(group_lines(placed.words)), 1):
            box = enclosing([w for line in block for w in line])
            out.append(f'<TextBlock ID="p{n}_b{b}" {_position(box)}>')
            for line in block:
                lines += 1
                _line(out, line, f"p{n}_l{lines}")
            out.append("</TextBlock>")
        out += ["</PrintSpace>", "</Page>"]
    out += ["</Layout>", "</alto>", ""]
    return "\n".join(out)
