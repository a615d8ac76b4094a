"""The manifest's JSON "parts" descriptions (Jotform, SendGrid) as real multipart/form-data bodies.

Built by hand to RFC 7578, the way browsers, curl and PHP senders write them: one part per field,
raw UTF-8 text with no per-part Content-Type or transfer encoding. (``email.mime`` would base64 the
Cyrillic parts, which those senders do not, and aiohttp's synchronous ``decode()`` leaves out the
closing boundary.)
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence


def build_multipart(
    parts: Mapping[str, str | bytes] | Sequence[tuple[str, str | bytes]], boundary: str | None = None
) -> tuple[bytes, str]:
    """The body and the Content-Type header (with its boundary) that carry ``parts``.

    A part given as bytes goes on the wire as it is (a sender's bad bytes); pairs may repeat a name.
    """
    boundary = boundary or f"----LeadlineTest{uuid.uuid4().hex}"
    items = parts.items() if isinstance(parts, Mapping) else parts
    encoded = [(name, value if isinstance(value, bytes) else value.encode("utf-8")) for name, value in items]
    if any(boundary.encode() in value for _, value in encoded):
        raise ValueError(f"boundary {boundary!r} occurs inside a part; choose another")
    chunks: list[bytes] = []
    for name, value in encoded:
        quoted = name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
        chunks += [
            f"--{boundary}\r\n".encode(),
            f'Content-Disposition: form-data; name="{quoted}"\r\n\r\n'.encode(),
            value,
            b"\r\n",
        ]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"
