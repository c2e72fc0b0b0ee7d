"""The two distributions stand apart: neither imports the other.

The emulator implements the service from the published API shapes, so that the provider and the
emulator check each other; sharing code would let them share one mistake. And the provider must
work where the emulator is not installed (a production worker). This reads every source file (no
import happens) and lists what each one imports, including ``importlib.import_module``,
``importlib.util.find_spec`` and ``__import__`` calls with a literal module name.
"""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1] / "src"
REPO_ROOT = SOURCE_ROOT.parents[1]
PACKAGES = ("amlretrain_emulator", "amlretrain_devstack")
PROVIDER = "airflow_provider_amlretrain"
DYNAMIC_IMPORTS = {"import_module", "find_spec", "__import__"}


def _absolute(module: str, level: int, path: Path, root: Path) -> str:
    """The absolute name of an import written in ``path`` (resolving ``from . import x``)."""
    if level == 0:
        return module
    package = list(path.relative_to(root).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, module] if module else base)


def imported_modules(path: Path, root: Path = SOURCE_ROOT) -> set[str]:
    """Every module ``path`` imports, statically or with a literal name given to an import call.

    :param path: a Python source file under ``root``.
    :param root: the directory that holds the top-level packages (``emulator/src``).
    :return: absolute module names.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(_absolute(node.module or "", node.level, path, root))
        elif isinstance(node, ast.Call) and node.args:
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            first = node.args[0]
            if name in DYNAMIC_IMPORTS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add(first.value)
    return found


def _imports_by_file(package: str, root: Path = SOURCE_ROOT) -> dict[str, set[str]]:
    files = sorted((root / package).rglob("*.py"))
    assert files, f"no sources under {root / package}"
    return {str(p.relative_to(root)): imported_modules(p, root) for p in files}


def _matching(imports: dict[str, set[str]], *prefixes: str) -> dict[str, list[str]]:
    hits = {
        name: sorted(m for m in modules if any(m == p or m.startswith(f"{p}.") for p in prefixes))
        for name, modules in imports.items()
    }
    return {name: modules for name, modules in hits.items() if modules}


def test_the_scan_sees_static_relative_and_dynamic_imports(tmp_path: Path) -> None:
    # The scanner itself, on a file of the emulator's shape: if it missed a form, the tests below
    # would pass whatever the sources import.
    sample = tmp_path / "amlretrain_emulator" / "sample.py"
    sample.parent.mkdir()
    sample.write_text(
        "import importlib\n"
        "import airflow_provider_amlretrain.hooks\n"
        "from . import app\n"
        "from .config import EmulatorConfig\n"
        "importlib.import_module('airflow_provider_amlretrain.api.bes')\n"
    )
    assert imported_modules(sample, root=tmp_path) == {
        "importlib",
        "airflow_provider_amlretrain.hooks",
        "amlretrain_emulator",
        "amlretrain_emulator.config",
        "airflow_provider_amlretrain.api.bes",
    }


def test_no_source_of_the_distribution_imports_the_provider() -> None:
    for package in PACKAGES:
        offenders = _matching(_imports_by_file(package), PROVIDER)
        assert offenders == {}, f"{package} must not import the provider: {offenders}"


def test_the_emulator_imports_neither_airflow_nor_the_dev_stack() -> None:
    # Only the dev stack's dag.test() harness (amlretrain_devstack.dagrun) may use Airflow.
    offenders = _matching(_imports_by_file("amlretrain_emulator"), "airflow", "amlretrain_devstack")
    assert offenders == {}, f"the emulator must stand alone: {offenders}"


def test_the_provider_imports_nothing_of_the_emulator_distribution() -> None:
    offenders = _matching(_imports_by_file(PROVIDER, root=REPO_ROOT), *PACKAGES)
    assert offenders == {}, f"the provider must work without amlretrain-emulator installed: {offenders}"
