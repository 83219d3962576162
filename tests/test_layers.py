"""The layer contract: importing segtool.core loads neither Qt nor TensorFlow/Keras."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN_IN_CORE = ("PySide6", "shiboken6", "tensorflow", "keras")

IMPORT_ALL_CORE = """
import importlib, json, pkgutil, sys
import segtool.core
names = sorted(m.name for m in pkgutil.iter_modules(segtool.core.__path__, "segtool.core."))
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "loaded": sorted(sys.modules)}))
"""


def test_core_imports_neither_qt_nor_tensorflow():
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL_CORE],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # The modules this contract exists for must be among those imported.
    for name in ("images", "normalize", "masks", "project", "export", "synthetic", "atomic"):
        assert f"segtool.core.{name}" in report["modules"]
    offenders = [module for module in report["loaded"] if module.split(".")[0] in FORBIDDEN_IN_CORE]
    assert offenders == [], f"segtool.core pulled in {offenders[:10]}"


IMPORT_PACKAGE = """
import importlib, json, pkgutil, sys
package = importlib.import_module({package!r})
names = sorted(m.name for m in pkgutil.iter_modules(package.__path__, {package!r} + "."))
for name in names:
    importlib.import_module(name)
print(json.dumps({{"modules": names, "loaded": sorted(sys.modules)}}))
"""


def _loaded_by(package):
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_PACKAGE.format(package=package)],
        capture_output=True, text=True, timeout=180, check=False,
        env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_ml_never_imports_qt():
    report = _loaded_by("segtool.ml")
    assert "segtool.ml.train" in report["modules"] and "segtool.ml.predict" in report["modules"]
    assert "tensorflow" in report["loaded"]  # the check is real: ml did load TensorFlow
    offenders = [m for m in report["loaded"] if m.split(".")[0] in ("PySide6", "shiboken6")]
    assert offenders == [], f"segtool.ml pulled in {offenders[:10]}"


def test_gui_modules_do_not_load_tensorflow_at_import():
    report = _loaded_by("segtool.gui")
    assert "segtool.gui.main_window" in report["modules"]
    assert "segtool.gui.workers" in report["modules"]
    assert "PySide6.QtWidgets" in report["loaded"]
    offenders = [m for m in report["loaded"] if m.split(".")[0] in ("tensorflow", "keras")]
    assert offenders == [], f"importing segtool.gui pulled in {offenders[:10]}"


def test_only_the_workers_name_segtool_ml():
    from pathlib import Path

    import segtool.gui

    gui = Path(segtool.gui.__file__).parent
    workers = gui / "workers"
    assert (workers / "__init__.py").is_file()  # the bridge is a folder of its own
    naming = sorted(str(path.relative_to(gui)) for path in gui.rglob("*.py")
                    if workers not in path.parents and "segtool.ml" in path.read_text("utf-8"))
    assert naming == [], f"gui modules outside workers/ name segtool.ml: {naming}"
    assert any("segtool.ml" in path.read_text("utf-8") for path in workers.glob("*.py"))


def test_no_gui_part_reaches_into_the_main_window():
    from pathlib import Path

    import segtool.gui

    gui = Path(segtool.gui.__file__).parent
    importers = sorted(path.name for path in gui.rglob("*.py")
                       if "main_window import" in path.read_text("utf-8"))
    assert importers == ["app.py"], importers  # the window is wiring; nothing imports it back
