"""The session's editing settings: one owner (the workspace), listeners told of each change."""

from __future__ import annotations

import pytest

from segtool.core.editing import EditingSettings, Setting, Tool
from segtool.core.workspace import Workspace


def test_listeners_hear_each_change_once_and_values_are_checked():
    settings = EditingSettings()
    heard = []
    settings.subscribe(lambda setting, value: heard.append((setting, value)))
    settings.tool = "fill"
    settings.tool = Tool.FILL  # no change: no news
    settings.brush_size = 5000
    settings.current_class = 3
    settings.mask_visible = False
    assert heard == [(Setting.TOOL, Tool.FILL), (Setting.BRUSH_SIZE, 1000),
                     (Setting.CURRENT_CLASS, 3), (Setting.MASK_VISIBLE, False)]
    with pytest.raises(ValueError):
        settings.current_class = 255
    with pytest.raises(ValueError):
        settings.tool = "spray can"


def test_paint_unlabelled_only_reaches_every_open_document(make_project):
    project = make_project(n_images=2, size=32)
    workspace = Workspace(project)
    first = workspace.open("img-1").document
    workspace.settings.paint_unlabelled_only = True
    second = workspace.open("img-2").document
    assert first.paint_unlabelled_only and second.paint_unlabelled_only
    workspace.settings.paint_unlabelled_only = False
    assert not first.paint_unlabelled_only and not second.paint_unlabelled_only
