"""Every public function, class and method of workflow_scripts/ says what it is.

The rule: a module-level function or class, and a method of such a class (or of a class inside it), whose name
does not start with an underscore needs a docstring. Exempt: `_private` names and dunders, and functions
defined inside functions (closures and local helpers that their enclosing docstring covers)."""
import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "workflow_scripts"
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def undocumented(tree: ast.Module, module: str) -> list[str]:
    """`module:line name` of each public definition under the rule above that lacks a docstring."""
    missing = []

    def visit(body, prefix):
        for node in body:
            if not isinstance(node, DEFINITIONS) or node.name.startswith("_"):
                continue
            if ast.get_docstring(node) is None:
                missing.append(f"{module}:{node.lineno} {prefix}{node.name}")
            if isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")

    visit(tree.body, "")
    return missing


def test_every_public_function_class_and_method_has_a_docstring():
    missing = [name for path in sorted(PACKAGE.rglob("*.py"))
               for name in undocumented(ast.parse(path.read_text()), str(path.relative_to(REPO)))]
    assert not missing, "no docstring:\n" + "\n".join(missing)


def test_the_rule_finds_what_it_should():
    tree = ast.parse('''
def public(): pass
def _private(): pass
class Thing:
    """Documented."""
    def method(self): pass
    def __init__(self): pass
def documented():
    """Yes."""
    def local(): pass
''')
    assert undocumented(tree, "m.py") == ["m.py:2 public", "m.py:6 Thing.method"]


def test_engine_run_says_its_shapes_and_dtypes():
    (engine,) = [node for node in ast.parse((PACKAGE / "engines" / "base.py").read_text()).body
                 if isinstance(node, ast.ClassDef) and node.name == "Engine"]
    (run,) = [node for node in engine.body if isinstance(node, ast.FunctionDef) and node.name == "run"]
    doc = " ".join(ast.get_docstring(run).split())
    assert "int64 [batch, seq]" in doc and "[batch, num_labels]" in doc, doc
