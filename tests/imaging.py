"""Test helpers that build image files by hand (importable from any test module)."""

from __future__ import annotations

import struct


def exif_app1(orientation: int, endian: str = "MM") -> bytes:
    """A JPEG APP1 segment with a minimal EXIF/TIFF block holding one Orientation (0x0112) entry.

    Insert it right after the SOI marker (``data[:2] + exif_app1(6) + data[2:]``).
    """
    e = "<" if endian == "II" else ">"
    tiff = endian.encode() + struct.pack(e + "HI", 42, 8)  # header, IFD0 at offset 8
    tiff += struct.pack(e + "H", 1)  # one entry
    tiff += struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0)  # SHORT, count 1, value
    tiff += struct.pack(e + "I", 0)  # no next IFD
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
