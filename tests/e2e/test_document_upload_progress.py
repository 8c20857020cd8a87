"""Sending a file shows how far it has got: on a slow link (Chromium's own network
throttling), the chat page shows "uploading NN%" and a progress bar that moves, then the
document's queued / indexing / ready states; a file too large, of a refused type, or cut off
by the network ends in a sentence saying so, and the list stays as it was."""

import itertools

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, create_account, sign_in
from tests.support.server import free_port, served_site

pytestmark = [pytest.mark.e2e, pytest.mark.system]

MAX_BYTES = 2 * 1024 * 1024
# 256 KB/s: a 1.5 MB file takes about six seconds to send.
SLOW_LINK = {"offline": False, "latency": 20, "downloadThroughput": -1, "uploadThroughput": 262144}
FACT = "The staff car park closes at ten in the evening."

# Every text the upload row's status shows, in order, and the documents' states after it.
RECORD_STATUSES = """() => {
  window.seenStatuses = [];
  const list = document.getElementById("documents-list");
  const note = () => {
    const texts = Array.from(list.querySelectorAll(".document-status"), (s) => s.textContent);
    const last = window.seenStatuses[window.seenStatuses.length - 1];
    if (texts.join("|") !== last) {
      window.seenStatuses.push(texts.join("|"));
    }
  };
  new MutationObserver(note).observe(list, { subtree: true, childList: true, characterData: true });
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A site without a language model (documents only), with a 2 MB file limit."""
    with served_site(
        tmp_path_factory.mktemp("upload-site"),
        free_port(),
        EMBEDDED_WORKER="0",
        DOCUMENTS_MAX_FILE_BYTES=str(MAX_BYTES),
    ) as running:
        yield running


_people = itertools.count(1)


@pytest.fixture
def chat_page(site, page_for):
    account = Account(f"ulla{next(_people)}", "ulla's long passphrase 8")
    create_account(site, account.username, account.password)
    page = page_for(site)
    sign_in(page, account)
    page.goto("/")
    expect(page.locator("#documents-panel")).to_be_visible()
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    page.network = network
    return page


def _slow(page) -> None:
    page.network.send("Network.emulateNetworkConditions", SLOW_LINK)


def _percentages(statuses: list[str]) -> list[int]:
    return [
        int(status.split("|")[0].removeprefix("uploading ").removesuffix("%"))
        for status in statuses
        if status.startswith("uploading ")
    ]


def test_a_slow_upload_shows_its_progress_then_the_indexing_states(chat_page, tmp_path):
    page = chat_page
    # Mostly blank lines: 1.5 MB to send, one short passage to index.
    big = tmp_path / "car park rules.txt"
    big.write_bytes(FACT.encode() + b"\n" * (1536 * 1024))
    page.evaluate(RECORD_STATUSES)
    _slow(page)

    page.set_input_files("#documents-file", str(big))

    bar = page.get_by_role("progressbar", name="Uploading car park rules.txt")
    expect(bar).to_be_visible()
    document = page.locator(".document:not(.is-sending)").first
    expect(document).to_have_attribute("data-status", "ready", timeout=60_000)
    expect(bar).to_have_count(0)
    expect(document.locator(".document-name")).to_have_text("car park rules.txt")
    expect(document.locator("input[type=checkbox]")).to_be_checked()

    statuses = page.evaluate("window.seenStatuses")
    percentages = _percentages(statuses)
    between = [p for p in percentages if 0 < p < 100]
    assert len(set(between)) >= 3, statuses
    assert percentages == sorted(percentages), statuses
    first_stored = next(i for i, s in enumerate(statuses) if not s.startswith("uploading"))
    assert all(not s.startswith("uploading") for s in statuses[first_stored:]), statuses
    assert statuses[-1] == "ready"
    assert {"queued", "ready"} & {s.split(" ")[0] for s in statuses[first_stored:]}
    assert page.csp_violations == []


def test_a_file_over_the_limit_is_refused_before_it_is_sent(chat_page, tmp_path):
    page = chat_page
    huge = tmp_path / "scan.txt"
    huge.write_bytes(b"a" * (MAX_BYTES + 1))
    sent = []
    page.on("request", lambda request: request.method == "POST" and sent.append(request.url))

    page.set_input_files("#documents-file", str(huge))

    expect(page.locator("#documents-error")).to_have_text(
        "scan.txt: The file is too large; files may be at most 2 MB."
    )
    expect(page.locator(".document")).to_have_count(0)
    assert sent == []


def test_a_refused_type_says_why_and_leaves_the_list_as_it_was(chat_page, tmp_path):
    page = chat_page
    kept = tmp_path / "notes.txt"
    kept.write_text("Team lunch is on Friday.")
    page.set_input_files("#documents-file", str(kept))
    expect(page.locator(".document")).to_have_count(1)
    picture = tmp_path / "photo.txt"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(2000))

    page.set_input_files("#documents-file", str(picture))

    expect(page.locator("#documents-error")).to_contain_text("photo.txt: ")
    expect(page.locator(".document")).to_have_count(1)
    expect(page.locator(".document .document-name")).to_have_text("notes.txt")
    expect(page.locator(".document.is-sending")).to_have_count(0)


def test_a_connection_lost_while_sending_says_so_and_stores_nothing(chat_page, tmp_path):
    page = chat_page
    minutes = tmp_path / "minutes.txt"
    minutes.write_bytes(FACT.encode())
    # The connection is reset under the upload (and only the upload).
    page.route(
        "**/documents/api/documents",
        lambda route: (
            route.abort("connectionreset") if route.request.method == "POST" else route.continue_()
        ),
    )

    page.set_input_files("#documents-file", str(minutes))

    expect(page.locator("#documents-error")).to_have_text(
        "minutes.txt: The connection was lost while the file was being sent; check the "
        "network and upload it again."
    )
    expect(page.locator(".document.is-sending")).to_have_count(0)
    expect(page.locator(".document")).to_have_count(0)
    page.unroute("**/documents/api/documents")
    stored = page.evaluate("() => fetch('/documents/api/documents').then((r) => r.json())")
    assert stored["documents"] == []
