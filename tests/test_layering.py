"""The layering of ARCHITECTURE.md, checked on every import of the package, function-level ones
included: a module imports only from its own layer and the layers below it.

    config < symbolic < ops < grad < compile < scan;  backends: symbolic and ops only;
    the Theano face (tensor/, gradient, printing, ifelse, ...) may import anything, and nothing
    below it imports the face.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RANK = {"config": 0, "symbolic": 1, "ops": 2, "grad": 3, "compile": 4, "backends": 4, "scan": 5}
# what each layer may import besides itself
ALLOWED = {
    "config": set(),
    "symbolic": {"config"},
    "ops": {"config", "symbolic"},
    "grad": {"config", "symbolic", "ops"},
    "backends": {"config", "symbolic", "ops"},
    "compile": {"config", "symbolic", "ops", "grad", "backends"},
    "scan": {"config", "symbolic", "ops", "grad", "compile", "backends"},
}
NOT_PACKAGE = {"tests", "benchmarks", "examples"}


def _layer(module: str) -> str:
    """'theon.ops.shape' -> 'ops'; the face ('theon', 'theon.tensor', ...) -> 'face'."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in RANK:
        return parts[1]
    return "face"


def _imports():
    """(importing module, imported module, file, line) for every theon import in the package."""
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in NOT_PACKAGE or rel.parts[0].startswith("."):
            continue
        module = ".".join(("theon",) + rel.with_suffix("").parts)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        if module.endswith(".__init__"):
            module = package = module[: -len(".__init__")]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not (target == "theon" or target.startswith("theon.")):
                    continue
                if node.module:
                    yield module, target, rel, node.lineno
                for alias in node.names:  # 'from . import backends' imports a module
                    if not node.module or target == "theon":
                        yield module, f"{target}.{alias.name}", rel, node.lineno
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "theon" or alias.name.startswith("theon."):
                        yield module, alias.name, rel, node.lineno


def test_the_walk_sees_function_level_imports():
    found = list(_imports())
    assert len(found) > 100
    assert any(str(rel) == "compile/function.py" for _, _, rel, _ in found)


def test_no_import_runs_up_the_layers():
    bad = []
    for src, dst, rel, line in _imports():
        a, b = _layer(src), _layer(dst)
        if a == "face" or a == b:
            continue
        if b not in ALLOWED[a]:
            bad.append(f"{rel}:{line}: {src} ({a}) imports {dst} ({b})")
    assert not bad, "imports against the layering of ARCHITECTURE.md:\n" + "\n".join(bad)
