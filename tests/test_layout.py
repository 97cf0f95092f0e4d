"""The library's layout rules: what each package may import, checked in fresh interpreters."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import playground

ROOT = Path(__file__).resolve().parents[1]


def _modules(prefix: str = "playground.") -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(playground.__path__, prefix)]
    return sorted(n for n in names if not n.endswith("__main__"))


def _imported_by(modules: list[str], watched: tuple[str, ...]) -> list[str]:
    """Which of `watched` a fresh interpreter holds after importing every one of `modules`.

    None of them found after importing all of them means none of them imports any.
    """
    code = f"import sys\nfor m in {modules!r}:\n    __import__(m)\nprint([w for w in {watched!r} if w in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout.strip().splitlines()[-1])


def test_no_module_outside_ui_imports_streamlit():
    library = [m for m in _modules() if not m.startswith("playground.ui")]
    assert len(library) > 30
    assert _imported_by(library, ("streamlit",)) == []


def test_spec_and_the_dataset_catalog_import_only_the_standard_library():
    light = [m for m in _modules() if m.startswith("playground.spec")] + ["playground.data.catalog", "playground.settings"]
    assert _imported_by(light, ("numpy", "tensorflow", "keras", "streamlit", "PIL")) == []


def test_every_page_file_is_thin():
    # A page sets its config and calls the render() of its playground.ui module; the code lives there.
    for page in [ROOT / "streamlit_app.py", *sorted((ROOT / "pages").glob("*.py"))]:
        lines = [line for line in page.read_text().splitlines() if line.strip()]
        assert len(lines) <= 12, f"{page.name} has {len(lines)} lines"
