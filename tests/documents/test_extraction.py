"""Text from real files, read in a limited child process; hostile files end with a reason."""

import io
import zipfile

import pytest

from documents.chunking import TARGET_CHARS, chunk_sections
from documents.extraction import ExtractionFailed, detect_kind, extract
from tests.documents import files


def test_the_type_comes_from_the_content_not_the_name():
    assert detect_kind(files.pdf(["x"])) == "pdf"
    assert detect_kind(files.docx("H", ["p"])) == "docx"
    assert detect_kind(files.html("H", "p")) == "html"
    assert detect_kind(b"# Title\n\nSome text.\n\n- a point\n") == "markdown"
    assert detect_kind(b"Just some words.") == "text"
    assert detect_kind(b"\x7fELF\x02\x01\x01\x00\x00\x00") is None
    assert detect_kind(b"PK\x03\x04 not really a zip") is None


def test_a_pdf_keeps_its_page_numbers():
    sections, pages = extract("pdf", files.pdf(["The first page.", "Parking is on level 3."]))

    assert pages == 2
    assert [(page, "level 3" in text) for page, _heading, text in sections] == [
        (1, False),
        (2, True),
    ]


def test_a_docx_is_read_with_its_heading():
    sections, _ = extract(
        "docx", files.docx("Travel policy", ["Trains are booked in second class."])
    )

    assert sections == [[None, "Travel policy", "Trains are booked in second class."]]


def test_html_scripts_and_styles_are_dropped():
    sections, _ = extract("html", files.html("Menu", "Soup on Fridays.", script="steal('SECRET')"))

    text = " ".join(f"{heading} {body}" for _page, heading, body in sections)
    assert "Soup on Fridays." in text
    assert "steal" not in text and "SECRET" not in text


def test_a_zip_bomb_docx_fails_with_a_reason():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"<w:document/>")
        archive.writestr("word/padding.xml", b"0" * (300 * 1024 * 1024))
    data = buffer.getvalue()
    assert len(data) < 1024 * 1024

    with pytest.raises(ExtractionFailed, match="unpacks to more than 200 MB"):
        extract("docx", data)


def test_a_pdf_claiming_ten_thousand_pages_fails_with_a_reason():
    data = files.pdf(["page"] * 2001)

    with pytest.raises(ExtractionFailed, match="2,001 pages"):
        extract("pdf", data)


def test_a_parser_that_runs_too_long_is_stopped():
    # A large text file with a tiny CPU budget: the child is killed, the reason is a sentence.
    data = ("word " * 900_000).encode()

    with pytest.raises(ExtractionFailed, match="longer than 0 seconds"):
        extract("markdown", data, cpu_seconds=1, wall_seconds=0.05)


def test_a_parser_that_needs_too_much_memory_is_stopped():
    with pytest.raises(ExtractionFailed, match="memory or time"):
        extract("text", b"x" * 4_500_000, memory_bytes=24 * 1024 * 1024)


def test_a_damaged_pdf_fails_with_a_reason():
    with pytest.raises(ExtractionFailed, match="damaged"):
        extract("pdf", b"%PDF-1.7\n" + b"\x00garbage" * 100)


def test_passages_follow_sections_and_overlap():
    long = " ".join(f"Sentence number {n} of the handbook." for n in range(200))
    passages = chunk_sections([[4, "Holidays", long], [5, None, "Short page."]])

    assert all(p.text.startswith("Holidays") for p in passages if p.page == 4)
    assert passages[-1].page == 5 and passages[-1].text == "Short page."
    assert all(len(p.text) <= TARGET_CHARS * 1.25 for p in passages)
    first, second = passages[0].text, passages[1].text
    assert second.split("\n\n", 1)[1][:40] in first
