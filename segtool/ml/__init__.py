"""The ml layer: Keras 3 on TensorFlow (U-Net, training, tiled prediction, model files).

Imports ``segtool.core``, never Qt. Importing this package is cheap; TensorFlow is
loaded by the submodules that need it.
"""
