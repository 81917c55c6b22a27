"""SSD machinery on torchvision.ops: anchors, matching and box coding, loss, post-processing."""

from mobivision.detection.anchors import AnchorGenerator
from mobivision.detection.loss import ssd_loss
from mobivision.detection.postprocess import decode_detections
from mobivision.detection.targets import build_targets, make_box_coder, match_anchors

__all__ = ["AnchorGenerator", "build_targets", "decode_detections", "make_box_coder", "match_anchors", "ssd_loss"]
