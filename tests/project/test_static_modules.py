"""collectstatic hashes the chat page's ES modules and the paths they import each other by,
so a page that loads a hashed main.js gets the hashed copy of every module it imports."""

import json
import re

from django.core.management import call_command

IMPORT_RE = re.compile(r'^(?:import|\}) .*?from "\./([^"]+)";$', re.MULTILINE)


def test_hashed_chat_modules_import_each_other_by_their_hashed_names(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path
    settings.WHITENOISE_USE_FINDERS = False
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "project.storage.StaticFilesStorage"},
    }
    call_command("collectstatic", "--noinput", verbosity=0)

    paths = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    modules = {name: hashed for name, hashed in paths.items() if name.startswith("js/chat/")}
    assert "js/chat/main.js" in modules
    hashed_names = {hashed.removeprefix("js/chat/") for hashed in modules.values()}
    imported = set()
    for hashed in modules.values():
        for target in IMPORT_RE.findall((tmp_path / hashed).read_text()):
            assert target in hashed_names, f"{hashed} imports {target}, not a hashed module"
            imported.add(target)
    # Every module but the entry point is reached from the others.
    assert imported == hashed_names - {modules["js/chat/main.js"].removeprefix("js/chat/")}
