"""The glyphless font of the searchable PDF's text layer, built here byte by byte.

A TrueType font of two glyphs, `.notdef` and one blank glyph, both empty
outlines 1000 units wide (1 em), with an ascent of 1 em and no descent: a
character of it covers exactly the box from its baseline up one font size, so
a word set in it spans its box. The PDF uses it as a `Type0` font with
`Identity-H` encoding over a `CIDFontType2` whose `CIDToGIDMap` sends every
CID to the blank glyph; the character codes are Unicode (see `Codes`), and
a `ToUnicode` CMap of the codes used gives them back to copy, search and
extraction. Nothing is
ever drawn with it (render mode 3), so it needs no outlines at all: the
whole font is under 1 KB, once per document.
"""

from __future__ import annotations

import struct

__all__ = ["FONT_NAME", "Codes", "cid_to_gid_map", "to_unicode_cmap", "truetype"]

#: The font's PostScript name (also the PDF `BaseFont`).
FONT_NAME = "AioUpstageOCRBlank"
#: Units per em; each glyph is this wide.
UNITS = 1000
#: The font's date (2024-01-01), in seconds since 1904 as TrueType counts.
_CREATED = 3786825600

# The first code of the range given to characters beyond the BMP: UTF-16 surrogates
# never occur as characters themselves, so these codes cannot collide with one.
_ASTRAL_BASE = 0xD800
_ASTRAL_END = 0xE000


# The blank glyph: one contour of two on-curve points, (0, 0) and (1000, 1000): a line,
# so it has no area and no ink even if filled, but its bounding box is the em square.
# (Readers that measure text by glyph boxes, pdfium among them, drop characters whose
# glyph has no box at all.)
_BLANK_GLYPH = (
    struct.pack(">hhhhh", 1, 0, 0, UNITS, UNITS)  # contours; xMin, yMin, xMax, yMax
    + struct.pack(">HH", 1, 0)  # end point of the contour; no instructions
    + bytes([0x01, 0x01])  # flags: on curve, x and y as int16 deltas
    + struct.pack(">hh", 0, UNITS)  # x deltas
    + struct.pack(">hh", 0, UNITS)  # y deltas
)


def _checksum(data: bytes) -> int:
    padded = data + b"\0" * (-len(data) % 4)
    words: tuple[int, ...] = struct.unpack(f">{len(padded) // 4}I", padded)
    return sum(words) & 0xFFFFFFFF


def _name_table() -> bytes:
    records = [(1, "AioUpstageOCR Blank"), (2, "Regular"), (4, "AioUpstageOCR Blank"),
               (6, FONT_NAME)]  # fmt: skip
    strings = b""
    entries = b""
    for name_id, text in records:
        raw = text.encode("utf-16-be")
        # platform 3 (Windows), encoding 1 (Unicode BMP), language 0x409 (en-US)
        entries += struct.pack(">HHHHHH", 3, 1, 0x409, name_id, len(raw), len(strings))
        strings += raw
    header = struct.pack(">HHH", 0, len(records), 6 + len(entries))
    return header + entries + strings


def _cmap_table() -> bytes:
    # One format 4 subtable (3, 1) mapping U+0020 to the blank glyph, plus the
    # required final 0xFFFF segment: enough for tools that expect a cmap.
    seg_count, search_range, entry_selector, range_shift = 2, 4, 1, 0
    body = struct.pack(
        ">HHHH", seg_count * 2, search_range, entry_selector, range_shift
    ) + struct.pack(">HH", 0x0020, 0xFFFF)  # end codes
    body += struct.pack(">H", 0)  # reserved pad
    body += struct.pack(">HH", 0x0020, 0xFFFF)  # start codes
    body += struct.pack(">hh", 1 - 0x0020, 1)  # deltas: U+0020 -> glyph 1; 0xFFFF -> 0
    body += struct.pack(">HH", 0, 0)  # no glyph id arrays
    subtable = struct.pack(">HHH", 4, 6 + len(body), 0) + body
    return struct.pack(">HH", 0, 1) + struct.pack(">HHI", 3, 1, 12) + subtable


def truetype() -> bytes:
    """The font file (sfnt `0x00010000`), checksummed, tables in tag order."""
    glyphs = 2
    tables = {
        b"OS/2": struct.pack(
            ">HhHHH10hh10s4I4sHHHhhhHH2I",
            1,  # version
            UNITS,  # xAvgCharWidth
            400,  # usWeightClass
            5,  # usWidthClass: medium
            0,  # fsType: installable embedding
            *(650, 700, 0, 140, 650, 700, 0, 480, 50, 250),  # sub/superscript, strikeout
            0,  # sFamilyClass
            b"\0" * 10,  # panose
            *(0, 0, 0, 0),  # ulUnicodeRange
            b"NONE",  # achVendID
            0x40,  # fsSelection: regular
            0x20,  # usFirstCharIndex
            0xFFFF,  # usLastCharIndex
            *(UNITS, 0, 0),  # sTypoAscender, sTypoDescender, sTypoLineGap
            *(UNITS, 0),  # usWinAscent, usWinDescent
            *(1, 0),  # ulCodePageRange: Latin 1
        ),
        b"cmap": _cmap_table(),
        b"glyf": _BLANK_GLYPH,  # glyph 1; .notdef is empty
        b"head": struct.pack(
            ">IIIIHHqqhhhhHHhhh",
            *(0x00010000, 0x00010000),  # version, fontRevision
            0,  # checkSumAdjustment, set below
            0x5F0F3CF5,  # magic
            0x000B,  # flags: baseline at y=0, lsb at x=0, integer scaling
            UNITS,
            *(_CREATED, _CREATED),  # created, modified
            *(0, 0, UNITS, UNITS),  # xMin, yMin, xMax, yMax
            *(0, 8, 2),  # macStyle, lowestRecPPEM, fontDirectionHint
            *(0, 0),  # indexToLocFormat (short), glyphDataFormat
        ),
        b"hhea": struct.pack(
            ">IhhhHhhhhhhhhhhhH",
            *(0x00010000, UNITS, 0, 0),  # version, ascender, descender, lineGap
            *(UNITS, 0, 0, UNITS),  # advanceWidthMax, minLSB, minRSB, xMaxExtent
            *(1, 0, 0),  # caretSlopeRise, caretSlopeRun, caretOffset
            *(0, 0, 0, 0, 0),  # reserved, metricDataFormat
            glyphs,  # numberOfHMetrics
        ),
        b"hmtx": struct.pack(">HhHh", UNITS, 0, UNITS, 0),
        b"loca": struct.pack(">HHH", 0, 0, len(_BLANK_GLYPH) // 2),  # short offsets: halves
        # maxPoints 2, maxContours 1, maxZones 2, the rest 0
        b"maxp": struct.pack(">IH13H", 0x00010000, glyphs, 2, 1, 0, 0, 2, *(0,) * 8),
        b"name": _name_table(),
        b"post": struct.pack(">IIhhIIIII", 0x00030000, 0, -100, 50, 0, 0, 0, 0, 0),
    }
    count = len(tables)
    power = 1
    while power * 2 <= count:
        power *= 2
    entry_selector = power.bit_length() - 1
    search_range = power * 16
    header = struct.pack(
        ">IHHHH", 0x00010000, count, search_range, entry_selector, count * 16 - search_range
    )
    offset = len(header) + 16 * count
    directory = b""
    body = b""
    head_offset = 0
    for tag in sorted(tables):
        data = tables[tag]
        if tag == b"head":
            head_offset = offset + len(body)
        directory += struct.pack(">4sIII", tag, _checksum(data), offset + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    font = bytearray(header + directory + body)
    adjustment = (0xB1B0AFBA - _checksum(bytes(font))) & 0xFFFFFFFF
    struct.pack_into(">I", font, head_offset + 8, adjustment)
    return bytes(font)


def cid_to_gid_map() -> bytes:
    """Every one of the 65536 CIDs to glyph 1 (two bytes each; compresses to ~300 bytes)."""
    return b"\x00\x01" * 65536


class Codes:
    """The character codes of one document's text layer, and the characters they stand for.

    A BMP character's code is its own code point; a character beyond the BMP
    gets a code from the surrogate range (no character has those), up to 2048
    of them a document (further ones are left out of the layer).
    """

    def __init__(self) -> None:
        self.chars: dict[int, str] = {}
        self._astral: dict[str, int] = {}

    def encode(self, text: str) -> bytes:
        """`text` as two-byte codes, each recorded for the ToUnicode CMap."""
        out = bytearray()
        chars = self.chars
        for char in text:
            code = ord(char)
            if code > 0xFFFF or _ASTRAL_BASE <= code < _ASTRAL_END:
                known = self._astral.get(char)
                if known is None:
                    if len(self._astral) >= _ASTRAL_END - _ASTRAL_BASE:
                        continue
                    known = self._astral[char] = _ASTRAL_BASE + len(self._astral)
                code = known
            chars[code] = char
            out += code.to_bytes(2, "big")
        return bytes(out)


def _hex(text: str) -> str:
    return text.encode("utf-16-be", "surrogatepass").hex().upper()


def to_unicode_cmap(chars: dict[int, str]) -> bytes:
    """The ToUnicode CMap of the codes a document used (`Codes.chars`), one entry each."""
    lines = [
        "/CIDInit /ProcSet findresource begin",
        "12 dict begin",
        "begincmap",
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
        f"/CMapName /{FONT_NAME}-UCS def",
        "/CMapType 2 def",
        "1 begincodespacerange",
        "<0000> <FFFF>",
        "endcodespacerange",
    ]
    pairs = sorted(chars.items())
    for start in range(0, len(pairs), 100):  # at most 100 entries a block
        some = pairs[start : start + 100]
        lines.append(f"{len(some)} beginbfchar")
        lines += [f"<{code:04X}> <{_hex(char)}>" for code, char in some]
        lines.append("endbfchar")
    lines += ["endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end", ""]
    return "\n".join(lines).encode("ascii")
