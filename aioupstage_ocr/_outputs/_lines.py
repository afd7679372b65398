"""A page's words placed in one pixel frame, and grouped into lines and blocks by geometry.

The service answers words (in its reading order) with no lines or blocks; hOCR,
ALTO and the PDF's spaces need them. `place` puts each word with text in the
page's pixel frame: the served pixel vertices where the page size is known,
otherwise the word's 0..1 vertices on a nominal square page of
`NOMINAL_SIZE` units a side (so relative geometry survives; consumers scale
by the page box the output declares). `group_lines` walks the words in the
service's order and starts a new line when a word does not sit beside the
previous one along that word's own direction (rotated text groups too);
`group_blocks` joins consecutive lines that stack closely and overlap
sideways. Words are never reordered.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._models import Page

__all__ = [
    "NOMINAL_SIZE",
    "Placed",
    "PlacedPage",
    "enclosing",
    "group_blocks",
    "group_lines",
    "place",
]

#: The side of the nominal page (in units) of a page whose pixel size is unknown.
NOMINAL_SIZE = 10000

Point = tuple[float, float]
Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Placed:
    """One word with text, in the page's pixel frame (y down).

    `quad` is four points clockwise from the text's own top-left; `box` the
    axis-aligned box around it; `angle` the text direction in degrees,
    counter-clockwise as seen on the page (0 upright, 90 reading upwards).
    """

    text: str
    confidence: float | None
    quad: tuple[Point, Point, Point, Point]
    box: Box
    angle: float

    @property
    def length(self) -> float:
        """The width of the word along its direction (mean of top and bottom edges)."""
        (ax, ay), (bx, by), (cx, cy), (dx, dy) = self.quad
        return (math.hypot(bx - ax, by - ay) + math.hypot(cx - dx, cy - dy)) / 2

    @property
    def height(self) -> float:
        """The height of the word across its direction (mean of left and right edges)."""
        (ax, ay), (bx, by), (cx, cy), (dx, dy) = self.quad
        return (math.hypot(dx - ax, dy - ay) + math.hypot(cx - bx, cy - by)) / 2


@dataclass(frozen=True, slots=True)
class PlacedPage:
    """A page's frame (`width` x `height` units; `known`: they are the page's pixels)."""

    index: int
    width: int
    height: int
    known: bool
    words: tuple[Placed, ...]


def place(page: Page) -> PlacedPage:
    """`page`'s words with text (blank ones left out), in its pixel frame, in service order."""
    known = bool(page.width and page.height)
    width = page.width if known and page.width else NOMINAL_SIZE
    height = page.height if known and page.height else NOMINAL_SIZE
    placed: list[Placed] = []
    for word in page.words:
        text = word.text.strip()
        if not text:
            continue
        pixels = word.pixel_vertices if known else None
        if pixels is not None:
            points = [(float(x), float(y)) for x, y in pixels]
        else:
            points = [(x * width, y * height) for x, y in word.vertices]
        if not points:
            continue
        placed.append(_placed(text, word.confidence, points))
    return PlacedPage(page.index, width, height, known, tuple(placed))


def _placed(text: str, confidence: float | None, points: list[Point]) -> Placed:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    box = (min(xs), min(ys), max(xs), max(ys))
    if len(points) == 4:
        quad = (points[0], points[1], points[2], points[3])
    else:  # not a quadrilateral: its box, upright
        quad = ((box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3]))
    (ax, ay), (bx, by), (cx, cy), (dx, dy) = quad
    # The direction of the text: its top and bottom edges, averaged (y flipped: up is +).
    ux, uy = (bx - ax) + (cx - dx), (by - ay) + (cy - dy)
    angle = math.degrees(math.atan2(-uy, ux)) if (ux or uy) else 0.0
    return Placed(text, confidence, quad, box, angle)


def _center(word: Placed) -> Point:
    x0, y0, x1, y1 = word.box
    return (x0 + x1) / 2, (y0 + y1) / 2


def _same_line(previous: Placed, word: Placed) -> bool:
    """Does `word` continue the line that `previous` ends, along `previous`'s direction?"""
    theta = math.radians(previous.angle)
    along_x, along_y = math.cos(theta), -math.sin(theta)  # page frame, y down
    (px, py), (wx, wy) = _center(previous), _center(word)
    dx, dy = wx - px, wy - py
    along = dx * along_x + dy * along_y
    across = -dx * along_y + dy * along_x
    size = max(previous.height, word.height, 1e-9)
    return abs(across) <= 0.5 * size and along > -0.5 * size


def group_lines(words: Sequence[Placed]) -> list[list[Placed]]:
    """Consecutive words that sit side by side, as lines (in the service's order)."""
    lines: list[list[Placed]] = []
    for word in words:
        if lines and _same_line(lines[-1][-1], word):
            lines[-1].append(word)
        else:
            lines.append([word])
    return lines


def enclosing(words: Sequence[Placed]) -> Box:
    """The axis-aligned box around `words` (not empty)."""
    return (
        min(w.box[0] for w in words),
        min(w.box[1] for w in words),
        max(w.box[2] for w in words),
        max(w.box[3] for w in words),
    )


def group_blocks(lines: Sequence[Sequence[Placed]]) -> list[list[Sequence[Placed]]]:
    """Consecutive lines that stack closely (gap under a line's height) and overlap sideways."""
    blocks: list[list[Sequence[Placed]]] = []
    block_box: Box | None = None
    last_height = 0.0
    for line in lines:
        box = enclosing(line)
        height = max(w.height for w in line)
        if block_box is not None:
            gap = box[1] - block_box[3]
            overlaps = box[0] < block_box[2] and box[2] > block_box[0]
            if overlaps and -0.5 * height <= gap <= max(height, last_height):
                blocks[-1].append(line)
                block_box = (
                    min(block_box[0], box[0]),
                    min(block_box[1], box[1]),
                    max(block_box[2], box[2]),
                    max(block_box[3], box[3]),
                )
                last_height = height
                continue
        blocks.append([line])
        block_box, last_height = box, height
    return blocks
