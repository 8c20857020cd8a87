"""Real files of every type, made in the tests (never checked in)."""

import io


def pdf(pages: list[str]) -> bytes:
    """A PDF with one page per string, its text extractable."""
    from fpdf import FPDF

    document = FPDF()
    document.set_font("helvetica", size=12)
    for text in pages:
        document.add_page()
        document.multi_cell(0, 8, text)
    return bytes(document.output())


def docx(heading: str, paragraphs: list[str]) -> bytes:
    import docx as python_docx

    document = python_docx.Document()
    document.add_heading(heading, level=1)
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def html(title: str, body: str, script: str = "") -> bytes:
    return (
        "<!DOCTYPE html><html><head><title>x</title>"
        f"<script>{script}</script></head><body><h1>{title}</h1><p>{body}</p>"
        f"<script>{script}</script></body></html>"
    ).encode()
