"""Text out of untrusted files, in a child process with time and memory limits.

``detect_kind`` decides the type from the bytes (never the name). ``extract`` runs the
parser for that type in a fresh Python process (``python -m documents.extraction KIND``)
with an address-space limit, a CPU-time limit and a wall-clock timeout, and with an empty
environment, so a hostile file (a zip bomb, a PDF that loops, ten thousand pages) ends that
process and this one only reads a reason. The child imports no Django and sees no key.

The child writes JSON: ``{"sections": [[page, heading, text], ...], "pages": n}`` or
``{"error": "a sentence"}``.
"""

import io
import json
import os
import re
import resource
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

KINDS = {
    "pdf": "PDF",
    "docx": "Word document",
    "html": "web page",
    "markdown": "Markdown",
    "text": "text",
}
# Far more than any real manual, far less than a hostile file's claim.
MAX_PAGES = 2000
# Text beyond this from one file is refused: 5 million characters is about 2,500 pages.
MAX_TEXT_CHARS = 5_000_000
# A .docx unpacks to this much at most (a zip bomb unpacks to gigabytes).
MAX_UNZIPPED_BYTES = 200 * 1024 * 1024
# Limits of the child process: memory for the parser and its data, CPU seconds, wall time.
MEMORY_LIMIT_BYTES = 1024 * 1024 * 1024
CPU_SECONDS = 60
WALL_SECONDS = 90


TOO_HUNGRY = (
    "Reading the file needed more memory or time than a document may use, so it was stopped."
)


class ExtractionFailed(Exception):
    """A file whose text could not be read; the message is a sentence for its owner."""


# --- Type from content ------------------------------------------------------------------

_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)
_MARKDOWN = re.compile(
    r"^(#{1,6}\s+\S|\s*[-*+]\s+\S|\s*\d+\.\s+\S|```|>\s|\[[^\]]+\]\([^)]+\))", re.M
)


def detect_kind(data: bytes) -> str | None:
    """The type of a file from its first bytes, or None when it is none we read."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, ValueError):
            return None
        return "docx" if "word/document.xml" in names else None
    head = data[:4096]
    if b"\x00" in head:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if _HTML_START.match(head.lstrip(b"\xef\xbb\xbf")):
        return "html"
    return "markdown" if len(_MARKDOWN.findall(text[:20000])) >= 2 else "text"


# --- Parsers (run in the child) -----------------------------------------------------------


def _pdf(data: bytes):
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise ExtractionFailed(
                "The PDF is protected by a password; upload an unprotected copy."
            )
        count = len(reader.pages)
    except PdfReadError:
        raise ExtractionFailed("The PDF is damaged and its text cannot be read.") from None
    if count > MAX_PAGES:
        raise ExtractionFailed(
            f"The PDF has {count:,} pages; at most {MAX_PAGES:,} can be indexed. Split it."
        )
    sections = []
    for number, page in enumerate(reader.pages, start=1):
        text = page.extract_text() or ""
        sections.append([number, None, text])
    return sections, count


def _docx(data: bytes):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
    if unpacked > MAX_UNZIPPED_BYTES:
        raise ExtractionFailed(
            "The Word document unpacks to more than 200 MB, which no real document does; "
            "it was not read."
        )
    import docx

    document = docx.Document(io.BytesIO(data))
    sections, heading, lines = [], None, []
    for paragraph in document.paragraphs:
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        text = paragraph.text.strip()
        if style.lower().startswith(("heading", "title")) and text:
            if lines:
                sections.append([None, heading, "\n\n".join(lines)])
            heading, lines = text, []
        elif text:
            lines.append(text)
    for table in document.tables:
        for row in table.rows:
            lines.append(" | ".join(cell.text.strip() for cell in row.cells))
    if lines:
        sections.append([None, heading, "\n\n".join(lines)])
    return sections, None


class _HTMLText(HTMLParser):
    """Visible text of a page, split at its headings; script, style and the like dropped."""

    SKIPPED = {"script", "style", "template", "noscript", "iframe", "object", "svg", "head"}
    BLOCKS = {"p", "div", "br", "li", "tr", "section", "article", "pre", "blockquote", "table"}
    HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.skipping = 0
        self.in_heading = False
        self.heading = None
        self.parts: list[str] = []
        self.heading_parts: list[str] = []
        self.sections: list[list] = []

    def _flush(self):
        text = re.sub(r"\n{3,}", "\n\n", "".join(self.parts)).strip()
        if text:
            self.sections.append([None, self.heading, text])
        self.parts = []

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIPPED:
            self.skipping += 1
        elif tag in self.HEADINGS and not self.skipping:
            self._flush()
            self.in_heading, self.heading_parts = True, []
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag in self.SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.HEADINGS and self.in_heading:
            self.in_heading = False
            self.heading = " ".join("".join(self.heading_parts).split()) or None
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if self.skipping:
            return
        (self.heading_parts if self.in_heading else self.parts).append(data)


def _html(data: bytes):
    parser = _HTMLText()
    parser.feed(data.decode("utf-8", errors="replace"))
    parser.close()
    parser._flush()
    return parser.sections, None


def _markdown(data: bytes):
    sections, heading, lines = [], None, []
    for line in data.decode("utf-8").splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            if "".join(lines).strip():
                sections.append([None, heading, "\n".join(lines).strip()])
            heading, lines = match.group(1), []
        else:
            lines.append(line)
    if "".join(lines).strip():
        sections.append([None, heading, "\n".join(lines).strip()])
    return sections, None


def _text(data: bytes):
    return [[None, None, data.decode("utf-8")]], None


PARSERS = {"pdf": _pdf, "docx": _docx, "html": _html, "markdown": _markdown, "text": _text}


def parse(kind: str, data: bytes) -> dict:
    """What the child computes: sections and pages, or an error sentence."""
    try:
        sections, pages = PARSERS[kind](data)
    except ExtractionFailed as exc:
        return {"error": str(exc)}
    except MemoryError:
        return {"error": TOO_HUNGRY}
    except Exception:  # any parser failure on an untrusted file is the file's
        return {"error": f"The {KINDS[kind]} could not be read; it may be damaged."}
    if sum(len(text) for _page, _heading, text in sections) > MAX_TEXT_CHARS:
        return {"error": "The file holds more than 5 million characters of text; split it."}
    return {"sections": sections, "pages": pages}


# --- The parent's side --------------------------------------------------------------------


def limit_this_process(memory_bytes: int, cpu_seconds: int) -> None:
    """Run first in the child: past these the kernel stops it (MemoryError, SIGXCPU)."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def extract(
    kind: str,
    data: bytes,
    *,
    memory_bytes: int = MEMORY_LIMIT_BYTES,
    cpu_seconds: int = CPU_SECONDS,
    wall_seconds: float = WALL_SECONDS,
) -> tuple[list[list], int | None]:
    """Sections ``[page, heading, text]`` and the page count of a file of type ``kind``,
    read in a limited child process; raises ExtractionFailed with a sentence for the owner."""
    if kind not in PARSERS:
        raise ExtractionFailed("This type of file cannot be read.")
    root = Path(__file__).resolve().parent.parent
    try:
        child = subprocess.run(  # noqa: S603 - our own module, by absolute interpreter path
            [
                sys.executable,
                "-I",
                "-c",
                _CHILD_MAIN,
                str(root),
                kind,
                str(memory_bytes),
                str(cpu_seconds),
            ],
            input=data,
            capture_output=True,
            timeout=wall_seconds,
            env={"PATH": os.defpath, "LANG": "C.UTF-8"},
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ExtractionFailed(
            f"Reading the file took longer than {int(wall_seconds)} seconds, so it was stopped."
        ) from None
    if child.returncode != 0:
        if child.returncode in (-9, -24, 152) or b"MemoryError" in child.stderr:
            raise ExtractionFailed(TOO_HUNGRY)
        raise ExtractionFailed("The file could not be read; it may be damaged.")
    try:
        answer = json.loads(child.stdout)
    except ValueError:
        raise ExtractionFailed("The file could not be read; it may be damaged.") from None
    if "error" in answer:
        raise ExtractionFailed(answer["error"])
    return answer["sections"], answer["pages"]


# The child's program: isolated mode (-I) ignores PYTHONPATH and the user's site, so the
# project directory is put on the path explicitly and only this module is imported; the
# limits apply before the file is read. (Limits set here rather than in a preexec_fn, which
# is unsafe in the web process's threads.)
_CHILD_MAIN = (
    "import sys, json; sys.path.insert(0, sys.argv[1]); "
    "from documents.extraction import limit_this_process, parse; "
    "limit_this_process(int(sys.argv[3]), int(sys.argv[4])); "
    "sys.stdout.write(json.dumps(parse(sys.argv[2], sys.stdin.buffer.read())))"
)
