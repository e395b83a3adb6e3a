"""The demo site's whitepaper: a one-page PDF made here, so the demo needs no binary file in the
repository and no PDF library. PDF 1.4 with the standard Helvetica font (every reader has it)
and a correct cross-reference table."""

from __future__ import annotations

import functools

PAGE_WIDTH, PAGE_HEIGHT = 612, 792  # US Letter, in points


def _escaped(text: str) -> str:
    """A PDF literal string's body: backslash and parentheses escaped, Latin-1 only."""
    plain = text.encode("latin-1", "replace").decode("latin-1")
    return plain.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def one_page_pdf(title: str, paragraphs: list[str]) -> bytes:
    """A valid one-page PDF showing ``title`` and ``paragraphs`` (each one line)."""
    lines = [f"BT /F1 22 Tf 72 {PAGE_HEIGHT - 96} Td ({_escaped(title)}) Tj ET"]
    for number, paragraph in enumerate(paragraphs):
        y = PAGE_HEIGHT - 140 - 22 * number
        lines.append(f"BT /F1 12 Tf 72 {y} Td ({_escaped(paragraph)}) Tj ET")
    content = "\n".join(lines).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}] "
            "/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
        ).encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    pdf = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")  # the binary comment marks a binary file
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    pdf += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    pdf += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(pdf)


@functools.cache
def whitepaper() -> bytes:
    """The demo company's whitepaper (made once per process)."""
    return one_page_pdf(
        "The Return Visit: a field guide",
        [
            "Most buyers research for months before they talk to anyone.",
            "They read the blog, compare prices, come back a week later.",
            "Each of those visits says something about how ready they are.",
            "This whitepaper is a demo: downloading it earned you points.",
            "Fill in the contact form next, and watch your lead appear.",
        ],
    )
