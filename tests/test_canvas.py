"""The labelling canvas driven with real mouse, wheel and key events (pytest-qt)."""

from __future__ import annotations

import numpy as np
import pytest
import qt_events
from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, Qt
from PySide6.QtWidgets import QApplication
from qt_events import click, drag, send_mouse, send_wheel

from segtool.core.labels import LabelDocument
from segtool.core.rect import Rect
from segtool.gui.canvas import Canvas, Tool
from segtool.gui.qimage import array_from_qimage, wrap_array

HEIGHT, WIDTH = 96, 128


def capsule(start, end, radius):
    return qt_events.capsule((HEIGHT, WIDTH), start, end, radius)


def bright_square_image():
    rng = np.random.default_rng(0)
    image = rng.integers(10, 50, (HEIGHT, WIDTH, 3)).astype(np.uint8)
    image[30:60, 40:70] = rng.integers(200, 230, (30, 30, 3))
    return image


@pytest.fixture
def canvas(qtbot):
    view = Canvas()
    qtbot.addWidget(view)
    view.resize(420, 320)
    view.show()
    qtbot.waitExposed(view)
    document = LabelDocument(np.full((HEIGHT, WIDTH), 255, np.uint8))
    view.set_document(document, bright_square_image())
    view.set_zoom(2.0)
    view.horizontalScrollBar().setValue(0)
    view.verticalScrollBar().setValue(0)
    QApplication.processEvents()
    return view


def test_brush_stroke_labels_exactly_the_swept_discs_and_undo_redo(canvas, qtbot):
    document = canvas.document
    canvas.set_current_class(2)
    canvas.set_brush_size(5)
    path = [(10, 10), (30, 10), (60, 40), (61, 41)]
    with qtbot.waitSignal(canvas.edited, timeout=1000):
        drag(canvas, path)
    expected = np.zeros((HEIGHT, WIDTH), bool)
    for start, end in zip(path, path[1:], strict=False):
        expected |= capsule(start, end, 2.5)
    assert np.array_equal(document.mask == 2, expected)
    assert np.array_equal(document.mask == 255, ~expected)
    canvas.undo()
    assert (document.mask == 255).all()
    canvas.redo()
    assert np.array_equal(document.mask == 2, expected)


def test_one_drag_is_one_undo_step(canvas):
    canvas.set_brush_size(3)
    drag(canvas, [(5, 5), (20, 5)])
    drag(canvas, [(5, 50), (6, 50), (7, 51), (40, 60)])
    canvas.undo()
    mask = canvas.document.mask
    assert mask[5, 12] == 1 and (mask[45:] == 255).all()


def test_overlay_shows_the_class_on_screen_and_undo_takes_it_away(canvas):
    canvas.set_class_colours([(0, 0, 0), (0, 255, 0)])
    canvas.set_overlay_opacity(1.0)
    drag(canvas, [(20, 20), (25, 20)])
    screen = array_from_qimage(canvas.viewport().grab().toImage())
    point = canvas.image_to_viewport(22, 20)
    assert tuple(screen[point.y(), point.x(), :3]) == (0, 255, 0)
    canvas.undo()
    QApplication.processEvents()
    screen = array_from_qimage(canvas.viewport().grab().toImage())
    assert screen[point.y(), point.x(), 1] < 100  # back to the dark image


def test_eraser_unlabels_and_paint_unlabelled_only_protects(canvas):
    canvas.set_brush_size(5)
    drag(canvas, [(10, 20), (50, 20)])
    canvas.set_tool(Tool.ERASER)
    drag(canvas, [(30, 15), (30, 25)])
    mask = canvas.document.mask
    assert mask[20, 30] == 255 and mask[20, 15] == 1 and mask[20, 45] == 1
    canvas.set_tool(Tool.BRUSH)
    canvas.set_current_class(3)
    canvas.document.paint_unlabelled_only = True
    drag(canvas, [(45, 10), (45, 30)])
    assert mask[20, 45] == 1 and mask[12, 45] == 3


def test_flood_fill_fills_the_enclosed_region_only(canvas):
    document = canvas.document
    document.fill_polygon([(20, 20), (60, 20), (60, 60), (20, 60)], 1)
    document.fill_polygon([(21, 21), (59, 21), (59, 59), (21, 59)], 0)  # a ring of class 1
    canvas.set_tool(Tool.FILL)
    canvas.set_current_class(2)
    click(canvas, (40, 40))
    mask = document.mask
    assert (mask[21:60, 21:60] == 2).all()
    assert (mask[20, 20:61] == 1).all() and mask[5, 5] == 255
    click(canvas, (5, 5))
    assert mask[5, 5] == 2 and mask[90, 120] == 2 and mask[20, 30] == 1


def test_polygon_closes_with_enter_or_double_click_and_escape_cancels(canvas, qtbot):
    canvas.set_tool(Tool.POLYGON)
    canvas.set_current_class(1)
    for pixel in [(10, 10), (30, 10), (30, 30), (10, 30)]:
        click(canvas, pixel)
    assert (canvas.document.mask == 255).all()
    with qtbot.waitSignal(canvas.edited, timeout=1000):
        qtbot.keyClick(canvas, Qt.Key_Return)
    mask = canvas.document.mask
    assert (mask[10:31, 10:31] == 1).all() and (mask == 1).sum() == 21 * 21
    canvas.set_current_class(2)
    for pixel in [(50, 50), (70, 50)]:
        click(canvas, pixel)
    send_mouse(canvas, QEvent.MouseButtonPress, (60, 70))
    send_mouse(canvas, QEvent.MouseButtonRelease, (60, 70))
    send_mouse(canvas, QEvent.MouseButtonDblClick, (60, 70))
    send_mouse(canvas, QEvent.MouseButtonRelease, (60, 70))
    assert mask[55, 60] == 2 and mask[50, 50] == 2 and mask[69, 50] == 255
    for pixel in [(80, 10), (100, 10), (100, 30)]:
        click(canvas, pixel)
    qtbot.keyClick(canvas, Qt.Key_Escape)
    qtbot.keyClick(canvas, Qt.Key_Return)
    assert mask[15, 95] == 255


def test_magic_wand_labels_the_bright_square(canvas):
    canvas.set_tool(Tool.WAND)
    canvas.set_wand_tolerance(40)
    click(canvas, (50, 40))
    labelled = canvas.document.mask == 1
    assert labelled[30:60, 40:70].all() and labelled.sum() == 900


def test_grabcut_box_labels_the_bright_square(canvas):
    canvas.set_tool(Tool.GRABCUT)
    drag(canvas, [(32, 22), (50, 40), (77, 67)])
    labelled = canvas.document.mask == 1
    truth = np.zeros_like(labelled)
    truth[30:60, 40:70] = True
    assert (labelled & truth).sum() / (labelled | truth).sum() > 0.85
    assert len(canvas.scene().items()) == 4  # the box preview is gone


def test_wheel_zooms_about_the_cursor(canvas):
    canvas.set_zoom(5.0)  # the image is larger than the viewport: scrolling is possible
    canvas.horizontalScrollBar().setValue(40)
    canvas.verticalScrollBar().setValue(30)
    position = QPointF(150, 110)
    before = canvas.viewport_to_scene(position)
    for notches, zoom in ((1, 6.25), (-2, 4.0), (3, 7.8125)):
        send_wheel(canvas, position, notches)
        assert canvas.zoom() == pytest.approx(zoom)
        after = canvas.viewport_to_scene(position)
        # the same image point stays under the cursor, to within one screen pixel
        assert abs(after.x() - before.x()) <= 1 / zoom
        assert abs(after.y() - before.y()) <= 1 / zoom


def test_ctrl_wheel_changes_the_brush_size_not_the_zoom(canvas, qtbot):
    canvas.set_brush_size(10)
    zoom = canvas.zoom()
    with qtbot.waitSignal(canvas.brush_size_changed, timeout=1000) as blocker:
        send_wheel(canvas, QPointF(100, 100), 1, Qt.ControlModifier)
    assert blocker.args[0] > 10 and canvas.zoom() == zoom
    send_wheel(canvas, QPointF(100, 100), -3, Qt.ControlModifier)
    assert canvas.brush_size < 10


def test_fit_and_100_percent(canvas, qtbot):
    with qtbot.waitSignal(canvas.zoom_changed, timeout=1000):
        canvas.fit_to_window()
    visible = canvas.mapToScene(canvas.viewport().rect()).boundingRect()
    assert visible.contains(canvas.sceneRect())
    assert canvas.zoom() == pytest.approx(min(canvas.viewport().width() / WIDTH,
                                              canvas.viewport().height() / HEIGHT), rel=0.05)
    canvas.zoom_100()
    assert canvas.zoom() == 1.0
    canvas.resize(600, 500)  # no longer in fit mode: the zoom stays
    QApplication.processEvents()
    assert canvas.zoom() == 1.0


def test_middle_button_and_space_drag_pan_without_painting(canvas, qtbot):
    canvas.set_zoom(8.0)
    horizontal = canvas.horizontalScrollBar()
    horizontal.setValue(100)
    drag(canvas, [(40, 20), (30, 20)], button=Qt.MiddleButton)
    assert horizontal.value() == 180  # 10 image pixels at 8x
    qtbot.keyPress(canvas, Qt.Key_Space)
    start = horizontal.value()
    drag(canvas, [(40, 20), (35, 20)])
    qtbot.keyRelease(canvas, Qt.Key_Space)
    assert horizontal.value() == start + 40
    assert (canvas.document.mask == 255).all()


def test_cursor_moved_reports_pixels_and_minus_one_outside(canvas, qtbot):
    with qtbot.waitSignal(canvas.cursor_moved, timeout=1000) as blocker:
        send_mouse(canvas, QEvent.MouseMove, (17, 9), Qt.NoButton, Qt.NoButton)
    assert blocker.args == [17, 9]
    canvas.fit_to_window()
    with qtbot.waitSignal(canvas.cursor_moved, timeout=1000) as blocker:
        send_mouse(canvas, QEvent.MouseMove, (-30, -30), Qt.NoButton, Qt.NoButton)
    assert blocker.args == [-1, -1]


def test_prediction_layer_shows_and_accept_fills_unlabelled_above_threshold(canvas):
    document = canvas.document
    document.paint_segment((5, 5), (5, 5), 0, 3)
    classes = np.zeros((HEIGHT, WIDTH), np.uint8)
    classes[10:25, 80:110] = 1  # over the dark background
    confidence = np.full((HEIGHT, WIDTH), 220, np.uint8)
    confidence[:, :10] = 30
    canvas.set_prediction(classes, confidence)
    canvas.set_overlay_opacity(0.0)
    QApplication.processEvents()
    screen = array_from_qimage(canvas.viewport().grab().toImage())
    edge = canvas.image_to_viewport(80, 15)
    assert screen[edge.y(), edge.x(), 0] > 200  # outline in class 1's red
    canvas.set_prediction_visible(False)
    QApplication.processEvents()
    screen = array_from_qimage(canvas.viewport().grab().toImage())
    assert screen[edge.y(), edge.x(), 0] < 200
    canvas.set_prediction_threshold(128)
    canvas.accept_prediction()
    mask = document.mask
    assert mask[5, 5] == 3 and mask[15, 90] == 1 and mask[80, 80] == 0 and mask[50, 5] == 255
    canvas.undo()
    assert (mask == 255).sum() == HEIGHT * WIDTH - 1


def test_wrapped_qimage_shares_memory_with_the_array():
    array = np.zeros((4, 6, 4), np.uint8)
    shared = wrap_array(array)
    array[2, 3] = (10, 20, 30, 255)
    assert shared.image.pixelColor(3, 2).getRgb() == (10, 20, 30, 255)


def test_switching_documents_drops_the_old_subscription(canvas):
    old = canvas.document
    new = LabelDocument(np.full((40, 50), 255, np.uint8))
    canvas.set_document(new, np.zeros((40, 50), np.uint8))
    old.paint_segment((3, 3), (3, 3), 1, 1)  # must not touch the new overlay
    assert (canvas.rendered_overlay(Rect(0, 0, 50, 40))[..., 3] == 0).all()
    with pytest.raises(ValueError):
        canvas.set_document(LabelDocument(np.zeros((5, 5), np.uint8)), np.zeros((6, 5), np.uint8))


def test_pixels_stay_crisp_when_zoomed_in(canvas):
    canvas.set_class_colours([(0, 0, 0), (255, 255, 255)])
    canvas.set_overlay_opacity(1.0)
    canvas.document.paint_segment((12, 12), (12, 12), 0, 1)  # one pixel
    canvas.set_zoom(8.0)
    canvas.horizontalScrollBar().setValue(0)
    canvas.verticalScrollBar().setValue(0)
    QApplication.processEvents()
    screen = array_from_qimage(canvas.viewport().grab().toImage())
    corner = canvas.image_to_viewport(12, 12) - QPoint(4, 4)  # the pixel's top-left on screen
    block = screen[corner.y() : corner.y() + 8, corner.x() : corner.x() + 8, :3]
    assert (block == 255).all()  # an 8x8 block of the class colour, no blur at its edges
    assert screen[corner.y() - 1, corner.x() + 4, 0] < 100
    assert screen[corner.y() + 8, corner.x() + 4, 0] < 100


class PaintRecorder(QObject):
    def __init__(self):
        super().__init__()
        self.rects = []

    def eventFilter(self, watched, event):
        if event.type() == QEvent.Paint:
            self.rects.extend(event.region())
        return False


def test_a_brush_stroke_repaints_only_the_changed_part_of_the_screen(canvas):
    canvas.set_brush_size(5)
    # After a zoom or scroll Qt repaints each item's whole visible area on its next update,
    # once: the first stroke takes that; the second shows the cost of painting itself.
    drag(canvas, [(10, 10), (12, 10)])
    recorder = PaintRecorder()
    canvas.viewport().installEventFilter(recorder)
    drag(canvas, [(30, 30), (34, 31), (38, 33)])
    canvas.viewport().removeEventFilter(recorder)
    assert recorder.rects
    painted = sum(rect.width() * rect.height() for rect in recorder.rects)
    # three discs of 5 image pixels at 2x, with their outline: far less than the image
    assert painted < (WIDTH * 2) * (HEIGHT * 2) / 20


def test_layers_keep_no_image_sized_colour_buffer_and_show_labels_zoomed_out(qtbot):
    import tracemalloc

    view = Canvas()
    qtbot.addWidget(view)
    view.resize(420, 320)
    view.show()
    qtbot.waitExposed(view)
    size = 2048
    mask = np.full((size, size), 255, np.uint8)
    mask[512:1536, 512:1536] = 1
    classes = np.zeros((size, size), np.uint8)
    confidence = np.full((size, size), 200, np.uint8)
    view.set_class_colours([(0, 0, 0), (0, 255, 0)])
    view.set_overlay_opacity(1.0)
    document, image = LabelDocument(mask), np.zeros((size, size), np.uint8)
    tracemalloc.start()
    try:
        view.set_document(document, image)
        view.set_prediction(classes, confidence)
        view.set_prediction_visible(False)
        for zoom in (view.fit_to_window, view.zoom_100, view.fit_to_window):
            zoom()
            view.viewport().repaint()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A full-size RGBA copy of the labels alone would be 4 * size² bytes (16 MiB here).
    assert peak < size * size // 2
    screen = array_from_qimage(view.viewport().grab().toImage())
    inside, outside = view.image_to_viewport(1024, 1024), view.image_to_viewport(100, 100)
    assert tuple(screen[inside.y(), inside.x(), :3]) == (0, 255, 0)
    assert tuple(screen[outside.y(), outside.x(), :3]) == (0, 0, 0)


def test_class_threshold_moves_the_drawn_outline_and_what_accept_takes(canvas):
    classes = np.zeros((HEIGHT, WIDTH), np.uint8)
    classes[10:25, 80:110] = 1
    confidence = np.full((HEIGHT, WIDTH), 220, np.uint8)
    confidence[10:25, 80:90] = 150  # p(class 1) = 0.59 on the left third
    canvas.set_prediction(classes, confidence, num_classes=2)
    canvas.set_overlay_opacity(0.0)

    def red_at(x, y):
        QApplication.processEvents()
        screen = array_from_qimage(canvas.viewport().grab().toImage())
        point = canvas.image_to_viewport(x, y)
        return screen[point.y(), point.x(), 0]

    assert red_at(80, 17) > 200 and red_at(90, 17) < 200  # the outline at x = 80
    canvas.set_class_threshold(1, 0.8)
    assert red_at(80, 17) < 200 and red_at(90, 17) > 200  # now at x = 90
    canvas.accept_prediction()
    assert canvas.document.mask[17, 85] == 0 and canvas.document.mask[17, 95] == 1
