"""Backbones: native MobileNetV1 and torchvision MobileNetV2/V3 behind one contract."""

from mobivision.backbones.features import Backbone, FeatureSpec
from mobivision.backbones.mobilenet_v1 import MobileNetV1Backbone
from mobivision.backbones.torchvision_mobilenets import TorchvisionMobileNetBackbone

__all__ = ["Backbone", "FeatureSpec", "MobileNetV1Backbone", "TorchvisionMobileNetBackbone"]
