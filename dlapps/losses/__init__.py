"""Losses the apps train with: triplet and CosFace losses for face embeddings, style losses."""

# The detector's objectness losses (dlapps.tasks.yolo_detector.YoloLoss); here so command lines list them without
# loading TensorFlow.
OBJECTNESS_LOSSES = ("varifocal", "bce")
