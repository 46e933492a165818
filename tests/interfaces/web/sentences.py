"""The English sentences the services give a user, read from their source, as templates.

A sentence is the message of a raised TTServiceError (or of one of its kind), or one of the
reasons a job row is given when it ends. The parts that vary become {0}, {1}, ...
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import ttservice

PACKAGE = Path(ttservice.__file__).parent
# The API and the CLI speak English only; the web app shows everything else.
NOT_SHOWN_IN_THE_WEB = ("interfaces/api", "interfaces/cli")
USER_ERRORS = {
    "TTServiceError",
    "MediaError",
    "MediaTooLarge",
    "NotMedia",
    "StoreError",
    "MigrationError",
    "RequestError",
    "ModelError",
}
# Keyword arguments and variables whose strings end up in a job row or on a page.
REASON_NAMES = {"error_message", "reason", "why", "sentence", "note"}
# Where a function returns a sentence shown on a page (why a job waits, why a process is not its worker).
REASONS_RETURNED = ("actions/", "supervision/")


def template(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.replace("{", "{{").replace("}", "}}")
    if isinstance(node, ast.JoinedStr):
        parts, n = [], 0
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(value.value.replace("{", "{{").replace("}", "}}"))
            else:
                parts.append(f"{{{n}}}")
                n += 1
        return "".join(parts)
    return None


def _is_sentence(text: str) -> bool:
    """Words a user reads (not '{0} ({1})'), ending as a sentence or a reason does."""
    literal = re.sub(r"\{\d+\}", " ", text)
    return len(re.findall(r"[A-Za-z]{2,}", literal)) >= 2 and text.rstrip().endswith((".", ")"))


def service_sentences() -> list[tuple[str, str]]:
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(NOT_SHOWN_IN_THE_WEB + ("interfaces/web",)):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            candidates: list[ast.expr] = []
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in USER_ERRORS and node.args:
                candidates.append(node.args[0])
            if isinstance(node, ast.Call):
                candidates += [k.value for k in node.keywords if k.arg in REASON_NAMES]
            if (
                isinstance(node, ast.Return)
                and node.value is not None
                and relative.startswith(REASONS_RETURNED)
            ):
                func = node.value
                if isinstance(func, ast.Tuple) and func.elts:
                    func = func.elts[-1] if relative.endswith("proctree.py") else func.elts[0]
                candidates.append(func)
            for candidate in candidates:
                text = template(candidate)
                if text and _is_sentence(text):
                    found.setdefault(text, f"{relative}:{candidate.lineno}")
    return sorted(found.items())
