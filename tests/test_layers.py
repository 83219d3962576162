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
