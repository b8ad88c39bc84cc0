"""The layout is the architecture: layers import only downwards, the kernel layer stands alone, and every
module says its one job."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "fastsoftmax"
#: Each layer and the layers of the package it may import from (besides itself).
LAYERS = {
    "kernels": {"validation", "errors", "_env"},
    "data": {"kernels", "validation", "errors", "_env", "_atomic"},
    "model": {"kernels", "data", "validation", "errors", "_env", "modelfile", "_dask", "_version"},
}


def imported_layers(path: Path) -> set:
    """The package's top-level modules and packages that a module imports (relative or absolute)."""
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(PACKAGE).parts) - 1  # 0 for fastsoftmax/x.py, 1 for fastsoftmax/kernels/x.py
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or "").startswith("fastsoftmax."):
                found.add(node.module.split(".")[1])
            elif node.level > depth:  # from .. import x / from ..x import y: above this module's package
                found.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("fastsoftmax."))
    return found


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layers_import_only_downwards(layer):
    for path in sorted((PACKAGE / layer).glob("*.py")):
        wrong = imported_layers(path) - LAYERS[layer] - {layer}
        assert not wrong, f"{path.relative_to(PACKAGE.parent)} imports {sorted(wrong)}"


def test_importing_the_kernel_layer_loads_nothing_of_the_download_stack_or_numba():
    code = ("import sys, fastsoftmax.kernels.reference; "
            "print(sorted(m for m in ('pooch', 'requests', 'urllib3', 'filelock', 'tqdm', 'matplotlib', 'sklearn', "
            "'dask', 'numba') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_every_module_says_its_one_job():
    for path in sorted(PACKAGE.rglob("*.py")):
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert docstring and len(docstring.splitlines()[0]) > 15, f"{path.relative_to(PACKAGE.parent)} has no docstring"
