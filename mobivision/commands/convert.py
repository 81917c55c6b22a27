"""Convert MobileNet weights (TF-Slim, Keras, timm, torchvision, ...) into a mobivision safetensors file.

Usage::

    python tools/convert_weights.py SOURCE OUTPUT.safetensors [--arch mobilenet_v1] [--width 1.0]
        [--resolution 224]

SOURCE is anything ``create_model(pretrained=...)`` accepts: a TF-Slim checkpoint prefix, ``.index`` file
or unpacked folder, a Keras ``.h5``, a timm / torchvision ``.pth`` or ``.safetensors``, or a URL. The
output records architecture, width, padding, BatchNorm epsilon, mean/std and classes, so it loads with
``create_model(name, width_mult=..., pretrained=OUTPUT)`` and reproduces the source model's outputs (the
conversion checks this before writing). A bad input ends with one ``error: ...`` line and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from mobivision.backbones.convert import convert_weights, read_metadata
from mobivision.commands.cli import positive_float
from mobivision.errors import MobivisionError
from mobivision.factory import list_models


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="weight file, TF checkpoint prefix/folder, or URL")
    parser.add_argument("output", help="the .safetensors file to write")
    parser.add_argument("--arch", choices=list_models(), help="architecture (default: read from the file)")
    parser.add_argument("--width", type=positive_float, help="width multiplier (default: from the file, else 1.0)")
    parser.add_argument(
        "--resolution", type=int, help="training input size to record (default: from the checkpoint, else 224)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        output = convert_weights(
            args.source, args.output, arch=args.arch, width_mult=args.width, resolution=args.resolution
        )
        meta = read_metadata(output)
    except MobivisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"read  {args.source}: format {meta['source_format']}, arch {meta['architecture']}, "
        f"width {meta['width_mult']:g}, {meta['num_classes']} classes, padding {meta['padding']}, "
        f"bn_eps {meta['bn_eps']:g}"
    )
    print(f"wrote {output} (resolution {meta['resolution']})")
    return 0
