"""The core layer: numpy and OpenCV only (images, masks, the project folder, exports).

Nothing here imports PySide6 or TensorFlow; ``tests/test_layers.py`` checks it.
"""
