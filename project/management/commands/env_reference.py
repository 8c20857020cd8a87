"""The reference table of every environment variable that project/settings.py reads.

The list comes from the code itself: ``project/settings.py`` is parsed (never executed) and
every call to a reader from ``core.env`` (``env_str``, ``env_int``, ...), to ``_secret``
or to ``os.environ``/``os.getenv`` with a literal name is one variable. Its default is
rendered from the call's default argument.

Its meaning is the one already written in the documentation's table, so wording improved
there is kept; a variable new to the table takes the comment lines directly above its
assignment (and a comment at the end of that line). A variable with neither stops the
command: every setting an operator can change must say what it does.

docs/deploy.md holds the table between two marker comments; ``--write`` replaces what lies
between them and ``--check`` fails when it is out of date (the test suite does the same).
"""

import ast
import importlib
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

START_MARKER = "<!-- env-reference:start -->"
END_MARKER = "<!-- env-reference:end -->"
HEADER = "| variable | default | meaning |\n|---|---|---|"

# Readers whose first argument is the variable's name and whose second is its default; the
# names imported from core.env are added when the settings file is read.
KEY_FILE_READER = "_secret"
ENVIRON_GETTERS = {"os.environ.get", "os.getenv", "environ.get", "getenv"}


class EnvReferenceError(Exception):
    """The settings or the documentation cannot give a complete reference."""


@dataclass(frozen=True)
class Variable:
    name: str
    default: str  # Markdown
    comment: str  # the comment in settings.py, "" when there is none


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _comments_by_line(source: str) -> tuple[dict[int, str], dict[int, str]]:
    """Whole-line comments and end-of-line comments, keyed by line number."""
    whole, trailing = {}, {}
    lines = source.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        line = token.start[0]
        text = token.string.lstrip("#").strip()
        if lines[line - 1].lstrip().startswith("#"):
            whole[line] = text
        elif not text.startswith("noqa"):
            trailing[line] = text
    return whole, trailing


class _SettingsReader:
    def __init__(self, source: str):
        self.tree = ast.parse(source)
        self.whole_comments, self.trailing_comments = _comments_by_line(source)
        self.readers = {KEY_FILE_READER}
        self.imported: dict[str, str] = {}  # local name -> module it comes from
        self.assigned: dict[str, ast.expr] = {}  # module-level NAME = expression
        for node in self.tree.body:
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    local = alias.asname or alias.name
                    self.imported[local] = node.module
                    if node.module == "core.env" and alias.name.startswith("env_"):
                        self.readers.add(local)
            elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        self.assigned.setdefault(target.id, node.value)
        # Setting name -> the variable it is read from (CHAT_KEYRING -> CHAT_ENCRYPTION_KEYS).
        self.variable_of = {
            setting: variable
            for setting, value in self.assigned.items()
            if (variable := self._read_by(self._value_call(value)))
        }

    def _variable_name(self, call: ast.Call) -> str | None:
        function = _dotted(call.func)
        if function in self.readers or function in ENVIRON_GETTERS:
            first = call.args[0] if call.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                return first.value
        return None

    def _read_by(self, node: ast.AST) -> str | None:
        """The variable that ``node`` reads, when it is a read of one."""
        if isinstance(node, ast.Call):
            return self._variable_name(node)
        return self._environ_subscript(node)

    @staticmethod
    def _environ_subscript(node: ast.AST) -> str | None:
        if (
            isinstance(node, ast.Subscript)
            and _dotted(node.value) in {"os.environ", "environ"}
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            return node.slice.value
        return None

    def _statement_of(self) -> dict[ast.AST, ast.stmt]:
        """Every node of the module with the innermost statement it belongs to."""
        owner: dict[ast.AST, ast.stmt] = {}
        pending = [(node, node) for node in self.tree.body]
        while pending:
            node, statement = pending.pop()
            owner[node] = statement
            for child in ast.iter_child_nodes(node):
                pending.append((child, child if isinstance(child, ast.stmt) else statement))
        return owner

    def variables(self) -> list[Variable]:
        chosen: dict[str, tuple[tuple[int, int], Variable]] = {}
        for node, statement in self._statement_of().items():
            if isinstance(node, ast.Call) and (name := self._variable_name(node)):
                default = self._default(node)
            elif name := self._environ_subscript(node):
                default = "none (required)"
            else:
                continue
            # The assignment whose value the read is describes the variable; other reads (a
            # check in an `if`, another setting's default) only count when there is none.
            is_value = isinstance(
                statement, ast.Assign | ast.AnnAssign
            ) and node is self._value_call(statement.value)
            rank = (0 if is_value else 1, statement.lineno)
            if name not in chosen or rank < chosen[name][0]:
                chosen[name] = (rank, Variable(name, default, self._comment(statement)))
        ordered = sorted(chosen.values(), key=lambda entry: entry[0][1])
        return [variable for _, variable in ordered]

    @staticmethod
    def _value_call(value: ast.expr) -> ast.expr:
        """An assignment's value without a trailing `[0]` or method call such as `.upper()`."""
        while True:
            if isinstance(value, ast.Subscript) and isinstance(value.value, ast.Call):
                value = value.value
            elif (
                isinstance(value, ast.Call)
                and isinstance(value.func, ast.Attribute)
                and isinstance(value.func.value, ast.Call)
            ):
                value = value.func.value
            else:
                return value

    def _comment(self, statement: ast.stmt) -> str:
        lines = []
        line = statement.lineno - 1
        while line in self.whole_comments:
            lines.insert(0, self.whole_comments[line])
            line -= 1
        if statement.lineno in self.trailing_comments:
            lines.append(self.trailing_comments[statement.lineno])
        return " ".join(" ".join(lines).split())

    # --- defaults -----------------------------------------------------------------------

    def _default(self, call: ast.Call) -> str:
        function = _dotted(call.func)
        argument = call.args[1] if len(call.args) > 1 else None
        for keyword in call.keywords:
            if keyword.arg == "default":
                argument = keyword.value
        if function == KEY_FILE_READER:
            file_name = self._constant(argument) if argument is not None else None
            return f"file `VAR_DIR/keys/{file_name}`" if file_name else "none"
        if argument is None:
            return "none"
        return self._render(argument)

    def _constant(self, node: ast.expr):
        """A literal value, or a name imported from a module that defines it as one."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name) and node.id in self.imported:
            value = getattr(importlib.import_module(self.imported[node.id]), node.id, None)
            if isinstance(value, str | int | float | bool):
                return value
        return None

    def _number(self, node: ast.expr) -> int | float | None:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Add | ast.Sub):
            left, right = self._number(node.left), self._number(node.right)
            if left is None or right is None:
                return None
            if isinstance(node.op, ast.Mult):
                return left * right
            return left + right if isinstance(node.op, ast.Add) else left - right
        return None

    def _path(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            left, right = self._path(node.left), self._path(node.right)
            return None if left is None or right is None else f"{left}/{right}"
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            if node.id == "BASE_DIR":  # relative paths are taken from the project directory
                return "."
            if node.id in self.variable_of:
                return self.variable_of[node.id]
            if node.id in self.assigned:
                return self._path(self.assigned[node.id])
        return None

    def _render(self, node: ast.expr) -> str:
        if isinstance(node, ast.Constant):
            value = node.value
            if value is None or value == "":
                return "none"
            if isinstance(value, bool):
                return f"`{str(value).lower()}`"
            return f"`{value}`"
        if isinstance(node, ast.List | ast.Tuple):
            items = [self._constant(item) for item in node.elts]
            if not items:
                return "none"
            if all(isinstance(item, str) for item in items):
                return f"`{','.join(items)}`"
        if (number := self._number(node)) is not None:
            return f"`{number}`"
        if isinstance(node, ast.Name) and node.id in self.variable_of:
            return f"as `{self.variable_of[node.id]}`"
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.Not)
            and isinstance(node.operand, ast.Call)
            and (name := self._variable_name(node.operand))
        ):
            return f"`true` when `{name}` is unset, else `false`"
        if (path := self._path(node)) is not None and "/" in path:
            return f"`{path}`"
        return f"`{ast.unparse(node)}`"


def read_variables(settings_file: Path) -> list[Variable]:
    """The environment variables that ``settings_file`` reads, in the order it reads them."""
    return _SettingsReader(settings_file.read_text(encoding="utf-8")).variables()


def _cells(row: str) -> list[str]:
    inner = row.strip().removeprefix("|").removesuffix("|")
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", inner)]


def documented_meanings(section: str) -> dict[str, str]:
    """Variable name -> meaning, from the rows of an existing table."""
    meanings = {}
    for row in section.splitlines():
        cells = _cells(row) if row.startswith("|") else []
        if len(cells) == 3 and re.fullmatch(r"`[A-Za-z0-9_]+`", cells[0]):
            meanings[cells[0].strip("`")] = cells[2]
    return meanings


def render_table(variables: list[Variable], meanings: dict[str, str]) -> str:
    rows, undocumented = [HEADER], []
    for variable in variables:
        meaning = meanings.get(variable.name) or variable.comment.replace("|", "\\|")
        if not meaning:
            undocumented.append(variable.name)
        default = variable.default.replace("|", "\\|")
        rows.append(f"| `{variable.name}` | {default} | {meaning} |")
    if undocumented:
        raise EnvReferenceError(
            f"No meaning for {', '.join(undocumented)}: write a comment line directly above "
            "the setting in project/settings.py, or the meaning in the documentation's table, "
            "then run `manage.py env_reference --write docs/deploy.md`."
        )
    return "\n".join(rows)


def split_document(text: str) -> tuple[str, str, str]:
    """The text before the table, the table section itself, and the text after it."""
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start < 0 or end < start:
        raise EnvReferenceError(
            f"The document has no {START_MARKER} ... {END_MARKER} section: put the two "
            "markers, each on a line of its own, where the table belongs."
        )
    start += len(START_MARKER)
    return text[:start], text[start:end], text[end:]


def regenerate(document: str, settings_file: Path) -> str:
    """``document`` with the table between the markers made anew from ``settings_file``."""
    before, section, after = split_document(document)
    table = render_table(read_variables(settings_file), documented_meanings(section))
    return f"{before}\n{table}\n{after}"


class Command(BaseCommand):
    help = (
        "Print the Markdown table of every environment variable project/settings.py reads; "
        "--write FILE replaces the table between the env-reference markers in FILE, "
        "--check FILE fails when that table is out of date."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group()
        target.add_argument("--write", type=Path, metavar="FILE", help="update FILE in place")
        target.add_argument("--check", type=Path, metavar="FILE", help="compare with FILE")

    def handle(self, *args, write, check, **options):
        settings_file = Path(settings.BASE_DIR) / "project" / "settings.py"
        document_file = write or check or Path(settings.BASE_DIR) / "docs" / "deploy.md"
        try:
            document = document_file.read_text(encoding="utf-8")
            updated = regenerate(document, settings_file)
        except (OSError, EnvReferenceError) as exc:
            raise CommandError(f"{document_file}: {exc}") from None
        if write:
            if updated != document:
                write.write_text(updated, encoding="utf-8")
            self.stdout.write(f"{write}: environment variable reference up to date.")
        elif check:
            if updated != document:
                raise CommandError(
                    f"{check} does not match project/settings.py: run "
                    f"`manage.py env_reference --write {check}` and review the table."
                )
            self.stdout.write(f"{check}: environment variable reference up to date.")
        else:
            self.stdout.write(split_document(updated)[1].strip())
