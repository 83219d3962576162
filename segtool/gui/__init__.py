"""The PySide6 window. Imports core; reaches ml only through :mod:`segtool.gui.workers`."""
