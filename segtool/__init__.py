"""segtool: label images for semantic segmentation with a U-Net that learns as you go."""

__version__ = "0.1.0"
