"""The image list shows the model's uncertainty readably and sorts by it."""

from __future__ import annotations

import datetime as dt

from segtool.core.project import ImageStatus
from segtool.gui.image_list import ImageListPanel, model_label


def test_uncertainty_is_shown_readably_with_the_model_it_comes_from(qtbot):
    panel = ImageListPanel()
    qtbot.addWidget(panel)
    values = {"a": 0.05, "b": 0.18, "c": None}
    today = dt.date.today().strftime("%Y%m%d")
    panel.set_images(["a", "b", "c"], {s: ImageStatus.UNLABELLED for s in values})
    panel.set_uncertainty_source(values.get, lambda: f"model-{today}-140215.keras")
    item = panel._item("b")
    assert item.text() == "b   [unlabelled]   uncertainty 0.18"
    assert "mean uncertainty 0.18 (model of 14:02)" in item.toolTip()
    assert "uncertainty" not in panel._item("c").text()
    panel.sort_box.setCurrentIndex(panel.sort_box.findData("uncertainty"))
    assert panel.ordered_stems() == ["b", "a", "c"]  # least certain first, unknown last


def test_model_label_names_the_day_when_it_is_not_today():
    assert model_label("model-20240102-030405.keras") == "model of 2024-01-02 03:04"
    assert model_label(None) == "current model"
    assert model_label("mine.keras") == "model mine.keras"
