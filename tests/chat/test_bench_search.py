"""`manage.py bench_search` seeds, measures, prints its figures and cleans up after itself."""

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from chat.models import Conversation

pytestmark = pytest.mark.django_db


def test_the_search_bench_prints_its_figures_and_leaves_nothing_behind(tmp_path):
    out = io.StringIO()
    figures_path = tmp_path / "search.json"

    call_command(
        "bench_search",
        "--here",
        *("--conversations", "6", "--messages", "4", "--repeat", "1"),
        "--json",
        str(figures_path),
        stdout=out,
    )

    printed = out.getvalue()
    assert "Search over 6 conversations x 4 messages" in printed
    assert "Slowest search:" in printed
    figures = json.loads(figures_path.read_text())
    # The one old answer holding the rare word is found, and only it.
    assert figures["queries"]["one old answer (a word in one body)"]["results"] == 1
    assert figures["queries"]["no match anywhere"]["results"] == 0
    assert not Conversation.objects.exists()
    assert not get_user_model().objects.filter(username__startswith="bench-search").exists()
