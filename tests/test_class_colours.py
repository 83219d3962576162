"""Class colours: a new class gets a distinct palette colour, every row shows its key."""

from __future__ import annotations

from test_menus import when_modal
from window_helpers import window_on_fixture  # noqa: F401

from segtool.core.classes import MIN_COLOUR_DISTANCE, next_class_colour
from segtool.gui.actions import ActionName


def distance(a, b):
    return sum(abs(x - y) for x, y in zip(a, b, strict=True))


def test_added_classes_get_distinct_palette_colours_and_key_hints(window_on, qtbot):
    window = window_on()
    for name in ("nucleus", "membrane", "debris"):
        def type_name(dialog, name=name):
            dialog.setTextValue(name)
            dialog.accept()
        when_modal(qtbot, type_name)
        window.actions_by_name[ActionName.ADD_CLASS].trigger()
    classes = window.project.classes
    assert [c.name for c in classes][-3:] == ["nucleus", "membrane", "debris"]
    colours = [c.colour for c in classes]
    for index, colour in enumerate(colours):
        assert distance(colour, (255, 255, 255)) >= MIN_COLOUR_DISTANCE  # never white
        for other in colours[:index]:
            assert distance(colour, other) >= MIN_COLOUR_DISTANCE
    rows = [window.classes_panel.list.item(i).text() for i in range(len(classes))]
    assert rows == [f"{c.name}   ({i})" for i, c in enumerate(classes)]  # 0 included


def test_background_is_visible_on_a_dark_image_and_recoloured_classes_are_avoided(
        make_project):
    background = make_project().classes[0].colour  # a new project's background
    assert distance(background, (0, 0, 0)) >= 3 * 90
    taken = [background, (230, 25, 75), (60, 180, 75)]
    assert distance(next_class_colour(taken), (60, 180, 75)) >= MIN_COLOUR_DISTANCE
    assert next_class_colour(taken) not in taken
