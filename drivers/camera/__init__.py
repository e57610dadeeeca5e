"""Camera backends: V4L2 through OpenCV."""
