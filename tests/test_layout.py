"""The layout's rules, read from the source (AST) rather than trusted: imports point one way,
packages <- builds <- index, web, api; index, web and api never import each other; lib/ and
the builder agent import no Django; and no module imports another app's private names."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("packages", "builds", "index", "web", "api", "lib")
# What each top-level package may import from the project (itself aside).
ALLOWED = {
    "lib": set(),
    "packages": {"lib"},
    "builds": {"lib", "packages"},
    "index": {"lib", "packages", "builds"},
    "web": {"lib", "packages", "builds"},
    "api": {"lib", "packages", "builds"},
}
DJANGO_FREE = ("lib", "builder/piwheels_builder")


def modules(top):
    for path in sorted((ROOT / top).rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def imported(tree):
    """(module, [names]) for every import statement in TREE, functions' bodies included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, [alias.name for alias in node.names]


@pytest.mark.parametrize("app", list(ALLOWED))
def test_imports_point_one_way(app):
    wrong = []
    for path, tree in modules(app):
        for module, _ in imported(tree):
            top = module.split(".")[0]
            if top in APPS and top != app and top not in ALLOWED[app]:
                wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("top", DJANGO_FREE)
def test_shared_helpers_and_the_agent_import_no_django(top):
    wrong = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path, tree in modules(top)
        for module, _ in imported(tree)
        if module.split(".")[0] in ("django", "rest_framework", "django_q") + APPS[:-1]
    ]
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_a_private_name_of_another_app():
    wrong = []
    for app in APPS:
        for path, tree in modules(app):
            for module, names in imported(tree):
                top = module.split(".")[0]
                if top in APPS and top != app:
                    wrong += [f"{path.relative_to(ROOT)}: {module}.{n}" for n in names
                              if n.startswith("_")]
    assert not wrong, "\n".join(wrong)


def test_the_rules_see_a_wrong_import(tmp_path):
    """The walker itself: a module that imports upwards is caught."""
    tree = ast.parse("def f():\n    from web.pages import _x\n")
    assert list(imported(tree)) == [("web.pages", ["_x"])]
