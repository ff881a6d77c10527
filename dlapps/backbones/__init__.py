"""Backbones: EfficientNet-Lite0 (offline ImageNet weights) and keras.applications wrappers.

This file imports nothing heavy, so command lines can list the choices without loading TensorFlow.
"""

BACKBONES = (
    "efficientnet_lite0",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_v2_b0",
    "resnet50",
    "small_resnet",
)
# Backbones that exist only from random weights (the from-scratch recipe).
SCRATCH_BACKBONES = ("small_resnet",)
# Backbones the detector offers (feature maps at strides 8, 16 and 32).
DETECTOR_BACKBONES = (
    "efficientnet_lite0", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_v2_b0", "resnet50", "small_resnet"
)  # fmt: skip
# The --weights words each app takes (anything else is a weights file).
WEIGHT_WORDS = {
    "cat": ("imagenet", "none"), "finetune": ("imagenet", "none"), "detect": ("imagenet", "none"),
    "faces": ("dlib", "imagenet", "none"), "style": ("hed", "imagenet"),
}  # fmt: skip
