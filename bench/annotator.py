"""A simulated person who labels an image with segtool's own editing code.

The ground-truth mask is the person's intent. Starting from whatever the document holds
(nothing, or an accepted prediction), the person repeatedly looks for the largest wrong
region and corrects it with the action that gains the most mean IoU per second of their
time: a fill click, a polygon around it, or brush strokes sized to it. Every action goes
through :class:`segtool.core.labels.LabelDocument` (``flood_fill``, ``fill_polygon``,
``paint_segment`` inside one stroke, ``accept_prediction``), exactly what the canvas's tools
call; nothing writes the mask directly.

Time is charged by a keystroke-level model (Card, Moran and Newell, "The Psychology of
Human-Computer Interaction", 1983: pointing P ~ 1.1 s, a mental act M ~ 1.35 s, a keystroke
K ~ 0.2-0.28 s), rounded to the figures below. Lengths are in screen pixels: the person views
the whole image fitted into a ``VIEW_PIXELS``-pixel canvas, so a 256-px image is zoomed in
and a 1388-px one zoomed out. The person is precise (no motor noise): what a stroke covers
is what they meant it to cover, so the figures favour no mode over another.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import cv2
import numpy as np

from segtool.core.brush import DEFAULT_WAND_TOLERANCE, GRABCUT_MAX_PIXELS, grabcut_crop
from segtool.core.labels import LabelDocument
from segtool.core.masks import UNLABELLED
from segtool.core.proposal import NEUTRAL, apply_thresholds
from segtool.core.rect import Rect

VOID = 255  # ground-truth pixels nobody is asked to label (the street set's void)

# -- the keystroke-level model (seconds) ---------------------------------------------------
CLICK_S = 1.0  # P + K: point at a region and click (a fill)
STROKE_S = 1.2  # P + K + a little: aim, press, and release a brush stroke ...
STROKE_PX_PER_S = 400.0  # ... plus its length in screen pixels at a steady 400 px/s
POLYGON_VERTEX_S = 0.8  # pointing at a nearby vertex and clicking (P with a short move)
POLYGON_CLOSE_S = 0.5  # Enter (K) plus a glance that the polygon closed
ACCEPT_S = 0.5  # the accept key (K) and a glance
SWITCH_IMAGE_S = 1.0  # the next-image key and the new image appearing
LOOK_S = 2.0  # taking in a new image (M plus eye movements)
CHOOSE_S = 1.35  # deciding what to correct next (M) before each correction
VIEW_PIXELS = 800  # the canvas's size on screen: images are viewed fitted into it
# Setting the Layers panel's class threshold: pick the class (a click, 1.0), drag the slider
# while the outlines follow (P plus a short drag, 1.2) and judge them (M, 1.35).
ADJUST_S = 3.5
ADJUST_STEPS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # positions the person tries
ADJUST_MIN_GAIN = 0.005  # a change of mean IoU the person would notice on screen

MAX_POLYGON_VERTICES = 40  # beyond this a person would rather paint
MAX_STROKES_PER_ACTION = 12  # then they look again

# -- the rest of segtool's tools (``SmartTools``): the magic wand and GrabCut on the shown
# image, and the fill tool's Shift+click -------------------------------------------------
# The wand is a click (CLICK_S) at the tolerance the toolbar shows. Unlike a polygon, what it
# takes is not known before the click: a person who needs another tolerance clicks, sees the
# region leak or fall short, undoes (UNDO_S: Ctrl+Z, K, and a glance) and types the next
# value of the ladder (TOLERANCE_S: point at the spin box, P 1.1, two digits and Enter, 3 K
# 0.6, a glance 0.3) before clicking again, one rung at a time.
TOLERANCE_S = 2.0
UNDO_S = 0.5
WAND_TOLERANCES = (4, 8, 12, 16, 24, 32, 48, 64)  # the ladder of values the person types
# GrabCut: press at one corner of a box round the region (P 1.1), drag to the other at
# STROKE_PX_PER_S and release (K 0.2), then wait for the worker thread: its time on this
# 2-core Xeon, 4 iterations, ~1.3 us per pixel of the crop GrabCut sees (the box widened by
# a quarter each side, at most GRABCUT_MAX_PIXELS; measured 0.024 s for a 100-px box, 0.45 s
# for 400 px, 1.2 s for 800 px).
BOX_S = 1.3
GRABCUT_S_PER_PIXEL = 1.3e-6
# Shift+click with the fill tool (every pixel of the clicked label, connected or not): a
# click with Shift held (K 0.2 more).
FILL_ALL_S = CLICK_S + 0.2


@dataclasses.dataclass
class Action:
    """One correction: its kind, its simulated cost and how it is applied."""

    kind: str  # "fill", "fill all", "polygon", "brush", "wand", "grabcut"
    seconds: float
    class_id: int
    points: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    radius: float = 0.0
    segments: list[tuple[tuple[float, float], tuple[float, float]]] = dataclasses.field(
        default_factory=list)
    tolerance: int = 0  # the wand's
    box: Rect | None = None  # GrabCut's


@dataclasses.dataclass
class SmartTools:
    """The magic wand, GrabCut and Shift+click fill, as the person has them: ``image`` is
    the open image as the canvas shows it (8-bit, windowed: ``core.window.display``),
    ``tolerance`` the wand's as the toolbar holds it (kept from image to image, as the
    window keeps it)."""

    image: np.ndarray | None = None
    tolerance: int = DEFAULT_WAND_TOLERANCE


def mean_iou(mask: np.ndarray, truth: np.ndarray) -> float:
    """Mean IoU over the classes present in ``truth`` or ``mask`` (void pixels ignored;
    an unlabelled pixel counts as no class, so as missing from its true class)."""
    valid = truth != VOID
    classes = np.union1d(np.unique(truth[valid]), np.unique(mask[valid]))
    classes = classes[classes != UNLABELLED]
    if classes.size == 0:
        return 1.0
    scores = []
    for value in classes:
        predicted, true = (mask == value) & valid, truth == value
        union = np.count_nonzero(predicted | true)
        scores.append(np.count_nonzero(predicted & true) / union if union else 1.0)
    return float(np.mean(scores))


def screen_scale(shape: tuple[int, int]) -> float:
    """Screen pixels per image pixel when the image is fitted into the canvas."""
    return VIEW_PIXELS / max(shape)


def _largest_wrong_region(mask: np.ndarray, truth: np.ndarray,
                          skip: np.ndarray) -> tuple[np.ndarray, int] | None:
    """The largest 8-connected region of pixels whose label is wrong, all of one true
    class, not in ``skip``: (bool mask of it, its true class), or None."""
    wrong = (mask != truth) & (truth != VOID) & ~skip
    best: tuple[int, np.ndarray, int] | None = None
    for value in np.unique(truth[wrong]):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(
            (wrong & (truth == value)).astype(np.uint8), connectivity=8)
        if count <= 1:
            continue
        index = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        area = int(stats[index, cv2.CC_STAT_AREA])
        if best is None or area > best[0]:
            best = (area, labels == index, int(value))
    return None if best is None else (best[1], best[2])


def _deepest_point(region: np.ndarray) -> tuple[int, int, float]:
    """(x, y) of the pixel of ``region`` farthest from its outside, and that distance."""
    distance = cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_L2, 3)
    distance = distance[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return int(x), int(y), float(distance[y, x])


Deepest = tuple[int, int, float]  # a region's _deepest_point: x, y and its distance inside


def _fill_action(deepest: Deepest, class_id: int, every: bool = False) -> Action:
    """A fill click at the region's deepest point; with ``every``, a Shift+click."""
    x, y, _ = deepest
    return Action("fill all" if every else "fill", FILL_ALL_S if every else CLICK_S, class_id,
                  points=[(float(x), float(y))])


def _polygon_action(region: np.ndarray, class_id: int, scale: float) -> Action | None:
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    epsilon = max(1.0, 2.0 / scale)  # vertices placed within ~2 screen pixels
    polygon = cv2.approxPolyDP(contour, epsilon, True)
    while len(polygon) > MAX_POLYGON_VERTICES:
        epsilon *= 1.5
        polygon = cv2.approxPolyDP(contour, epsilon, True)
    if len(polygon) < 3:
        return None
    points = [(float(p[0][0]), float(p[0][1])) for p in polygon]
    return Action("polygon", POLYGON_VERTEX_S * len(points) + POLYGON_CLOSE_S, class_id,
                  points=points)


def _brush_action(region: np.ndarray, deepest: Deepest, class_id: int,
                  scale: float) -> Action:
    """Horizontal strokes along the runs of ``region``, with a brush as thick as it."""
    x, y, depth = deepest
    radius = float(min(30.0, max(1.0, math.floor(depth * 0.9))))
    rows = np.flatnonzero(region.any(axis=1))
    top, bottom = int(rows[0]), int(rows[-1])
    spacing = max(1, int(1.6 * radius))
    segments = []
    for y in range(min(bottom, top + int(radius)), bottom + 1, spacing):
        line = region[y].astype(np.int8)
        edges = np.flatnonzero(np.diff(np.concatenate(([0], line, [0]))))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            segments.append(((float(start), float(y)), (float(stop - 1), float(y))))
    if not segments:
        segments = [((float(x), float(y)), (float(x), float(y)))]
    segments.sort(key=lambda s: -(s[1][0] - s[0][0]))
    segments = segments[:MAX_STROKES_PER_ACTION]
    seconds = sum(STROKE_S + (end[0] - start[0]) * scale / STROKE_PX_PER_S
                  for start, end in segments)
    return Action("brush", seconds, class_id, radius=radius, segments=segments)


def _wand_actions(deepest: Deepest, class_id: int, tools: SmartTools) -> list[Action]:
    """A wand click at the region's deepest point at each tolerance of the ladder, charged
    for the tries on the rungs between the toolbar's tolerance and that one."""
    x, y, _ = deepest
    ladder = sorted({tools.tolerance, *WAND_TOLERANCES})
    here = ladder.index(tools.tolerance)
    return [Action("wand", CLICK_S + abs(rung - here) * (UNDO_S + TOLERANCE_S + CLICK_S),
                   class_id, points=[(float(x), float(y))], tolerance=tolerance)
            for rung, tolerance in enumerate(ladder)]


def _grabcut_action(region: np.ndarray, class_id: int, scale: float) -> Action | None:
    """A GrabCut box round the region, 2 px wider each side (the person boxes what they
    see); None for a region too thin to box."""
    x, y, width, height = cv2.boundingRect(region.astype(np.uint8))
    box = Rect.from_bounds(x - 2, y - 2, x + width + 2, y + height + 2).clip(
        region.shape[1], region.shape[0])
    if box.width < 5 or box.height < 5:
        return None
    crop = grabcut_crop(box, region.shape[1], region.shape[0])
    wait = GRABCUT_S_PER_PIXEL * min(crop.area, GRABCUT_MAX_PIXELS)
    drag = math.hypot(box.width, box.height) * scale / STROKE_PX_PER_S
    return Action("grabcut", BOX_S + drag + wait, class_id, box=box)


def apply(document: LabelDocument, action: Action, image: np.ndarray | None = None) -> None:
    """Carry ``action`` out with the document's own tools (one undo step); the smart tools
    act on ``image``, the shown image."""
    if action.kind in ("wand", "grabcut"):
        if image is None:
            raise ValueError(f"{action.kind} needs the shown image")
        if action.kind == "wand":
            x, y = action.points[0]
            document.magic_wand(image, int(x), int(y), action.tolerance, action.class_id)
        else:
            assert action.box is not None
            cv2.setRNGSeed(0)  # GrabCut's k-means start: the trial and the act agree
            document.grabcut(image, action.box, action.class_id)
    elif action.kind in ("fill", "fill all"):
        x, y = action.points[0]
        document.flood_fill(int(x), int(y), action.class_id, action.kind == "fill")
    elif action.kind == "polygon":
        document.fill_polygon(action.points, action.class_id)
    elif action.kind == "brush":
        document.begin_stroke()
        try:
            for start, end in action.segments:
                document.paint_segment(start, end, action.radius, action.class_id)
        finally:
            document.end_stroke()
    else:
        raise ValueError(f"not a correction: {action.kind}")


def _outcome(document: LabelDocument, action: Action, truth: np.ndarray,
             image: np.ndarray | None = None) -> float:
    """Mean IoU after ``action``, tried on a copy of the document."""
    trial = LabelDocument(document.mask.copy(), history_bytes=1)
    apply(trial, action, image)
    return mean_iou(trial.mask, truth)


@dataclasses.dataclass
class ImageEffort:
    """What labelling one image cost the simulated person."""

    seconds: float = 0.0
    actions: dict[str, int] = dataclasses.field(default_factory=dict)
    miou: float = 0.0
    reached: bool = False

    def charge(self, kind: str, seconds: float) -> None:
        self.seconds += seconds
        self.actions[kind] = self.actions.get(kind, 0) + 1


def correct_until(document: LabelDocument, truth: np.ndarray, target: float,
                  cap_seconds: float, effort: ImageEffort | None = None,
                  tools: SmartTools | None = None) -> ImageEffort:
    """Correct ``document`` towards ``truth`` until its mean IoU reaches ``target`` or the
    person has spent ``cap_seconds`` on the image (counting what ``effort`` already holds).
    With ``tools`` the wand, GrabCut and Shift+click fill are candidates beside fill, brush
    and polygon."""
    effort = effort or ImageEffort()
    image = None if tools is None else tools.image
    scale = screen_scale(document.shape)
    skip = np.zeros(truth.shape, bool)
    score = mean_iou(document.mask, truth)
    while score < target and effort.seconds < cap_seconds:
        found = _largest_wrong_region(document.mask, truth, skip)
        if found is None:
            break
        region, class_id = found
        deepest = _deepest_point(region)
        candidates = [_fill_action(deepest, class_id),
                      _brush_action(region, deepest, class_id, scale)]
        polygon = _polygon_action(region, class_id, scale)
        if polygon is not None:
            candidates.append(polygon)
        if image is not None:
            candidates += _wand_actions(deepest, class_id, tools)
            candidates.append(_fill_action(deepest, class_id, every=True))
            grabcut = _grabcut_action(region, class_id, scale)
            if grabcut is not None:
                candidates.append(grabcut)
        best, best_rate, best_score = None, 0.0, score
        for action in candidates:
            after = _outcome(document, action, truth, image)
            rate = (after - score) / (action.seconds + CHOOSE_S)
            if rate > best_rate:
                best, best_rate, best_score = action, rate, after
        if best is None:  # nothing helps here: look at the next region
            skip |= region
            continue
        apply(document, best, image)
        effort.charge(best.kind, best.seconds + CHOOSE_S)
        if best.kind == "wand":
            tools.tolerance = best.tolerance  # the toolbar keeps what was typed
        score = mean_iou(document.mask, truth)
        assert abs(score - best_score) < 1e-9, "the trial and the document disagree"
    effort.miou = score
    effort.reached = score >= target
    return effort


@dataclasses.dataclass
class ClassThresholds:
    """The window's class-threshold slider as the person leaves it between images (the
    canvas keeps one threshold per class for the session; core/proposal.py)."""

    num_classes: int | None
    thresholds: dict[int, float] = dataclasses.field(default_factory=dict)


def _shown(prediction: Sequence[np.ndarray], thresholds: dict[int, float],
           num_classes: int | None) -> tuple[np.ndarray, np.ndarray]:
    """What the window shows of ``prediction`` ((classes, confidence) and, for more than
    two classes, the runner-up's two arrays) under the class ``thresholds``."""
    classes, confidence, *runner_up = prediction
    return apply_thresholds(classes, confidence, thresholds, num_classes,
                            tuple(runner_up) or None)  # type: ignore[arg-type]


def _accepted_score(document: LabelDocument, prediction: Sequence[np.ndarray],
                    thresholds: dict[int, float], num_classes: int | None, threshold: int,
                    truth: np.ndarray) -> float:
    classes, confidence = _shown(prediction, thresholds, num_classes)
    trial = LabelDocument(document.mask.copy(), history_bytes=1)
    trial.accept_prediction(classes, confidence, threshold)
    return mean_iou(trial.mask, truth)


def adjust_thresholds(document: LabelDocument, truth: np.ndarray,
                      prediction: Sequence[np.ndarray], threshold: int,
                      slider: ClassThresholds, target: float = 1.0) -> bool:
    """Before accepting, the person moves one class's threshold to the position of
    ``ADJUST_STEPS`` whose proposal fits their intent best, if that beats the slider as it
    stands by ``ADJUST_MIN_GAIN``; ``slider`` is updated. A proposal that already reaches
    ``target`` is left as it is. True if they moved it."""
    current = _accepted_score(document, prediction, slider.thresholds, slider.num_classes,
                              threshold, truth)
    if current >= target:  # the proposal as shown already fits: accept it as it is
        return False
    best, best_score = None, current + ADJUST_MIN_GAIN
    present = np.unique(prediction[0])
    for class_id in (int(c) for c in present if c != UNLABELLED):
        for step in ADJUST_STEPS:
            if step == slider.thresholds.get(class_id, NEUTRAL):
                continue
            trial = {k: v for k, v in slider.thresholds.items() if k != class_id}
            if step != NEUTRAL:
                trial[class_id] = step
            score = _accepted_score(document, prediction, trial, slider.num_classes,
                                    threshold, truth)
            if score > best_score:
                best, best_score = trial, score
    if best is None:
        return False
    slider.thresholds = best
    return True


def label_image(document: LabelDocument, truth: np.ndarray, target: float,
                cap_seconds: float, prediction: Sequence[np.ndarray] | None = None,
                threshold: int = 0, slider: ClassThresholds | None = None,
                tools: SmartTools | None = None) -> ImageEffort:
    """Switch to the image, look at it, accept ``prediction`` (classes, confidence, and
    optionally the runner-up class and its confidence) if given, then correct until
    ``target``. With ``slider``, the person may first move the class-threshold slider
    (:func:`adjust_thresholds`) and accepts what it shows; with ``tools`` (its ``image``
    this image as shown) they may also correct with the wand, GrabCut and Shift+click
    fill."""
    effort = ImageEffort()
    effort.charge("switch", SWITCH_IMAGE_S)
    effort.charge("look", LOOK_S)
    if prediction is not None:
        classes, confidence = prediction[:2]
        if slider is not None:
            if adjust_thresholds(document, truth, prediction, threshold, slider, target):
                effort.charge("adjust", ADJUST_S)
            classes, confidence = _shown(prediction, slider.thresholds, slider.num_classes)
        document.accept_prediction(classes, confidence, threshold)
        effort.charge("accept", ACCEPT_S)
    return correct_until(document, truth, target, cap_seconds, effort, tools)


def actions_text(actions: dict[str, int],
                 kinds: Sequence[str] = ("adjust", "accept", "fill", "fill all", "polygon",
                                         "brush", "wand", "grabcut")) -> str:
    """``fill 3 polygon 1 brush 12`` (kinds with a count only)."""
    return " ".join(f"{kind} {actions[kind]}" for kind in kinds if actions.get(kind))
