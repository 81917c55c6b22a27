"""The inference API (``mobivision.load``): every input kind, each head's result schema, checkpoint vs exported
ONNX vs exported OpenVINO IR agreement, and the exported files' path without torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mobivision
from mobivision.commands.benchmark import build_parser
from mobivision.commands.benchmark_inference import run_inference, write_photos
from mobivision.commands.export import export_task
from mobivision.commands.export_formats import FP16_ATOL, FP16_RTOL
from mobivision.detection.postprocess import decode_detections
from mobivision.errors import ConfigError, WeightFileError
from mobivision.export import openvino_ir
from mobivision.inference import Attributes, Classes, Detections, Location, Result
from mobivision.inference.decode import decode_ssd
from mobivision.inference.preprocess import prepare_batch
from mobivision.tasks.runner import load_task

# Exports four tiny models to ONNX and OpenVINO IR (parity-checked): about a minute.
pytestmark = pytest.mark.slow

KINDS = {"classifier": Classes, "attributes": Attributes, "geo": Location, "detector": Detections}


def _photo(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth random RGB picture (blobs, not noise), so a detector's scores spread."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC))


IMAGES = [_photo(120, 200, 0), _photo(300, 90, 1), _photo(64, 64, 2), _photo(481, 333, 3)]


@pytest.fixture(scope="module")
def models(tiny_task_checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Per tiny model its checkpoint, its ONNX export (detector: also the graph with NMS) and, where OpenVINO is
    installed, its OpenVINO IR with fp32 and with fp16 weights."""
    found = {}
    for name, ckpt in tiny_task_checkpoints.items():
        out = tmp_path_factory.mktemp(f"export, {name}")  # a comma and a space in the path (OpenVINO's converter)
        formats = ["onnx", "onnx-nms"] if name == "detector" else ["onnx"]
        formats += ["openvino", "openvino-fp16"] if openvino_ir.available() else []
        export_task(load_task(ckpt).eval(), out, formats=formats, parity_images=2, checkpoint=ckpt)
        found[name] = {"ckpt": ckpt, "out": out, "onnx": out / "model.onnx", "nms": out / "model_nms.onnx"}
        found[name] |= {"xml": out / "model.xml", "fp16": out / "model.fp16.xml"}
    return found


def _needs_openvino() -> None:
    pytest.importorskip("openvino", reason="OpenVINO is not installed: pip install -e '.[openvino]' (part of dev)")


def _assert_same(a: Result, b: Result, *, boxes_px: float = 1e-2, probability: float = 1e-4) -> None:
    assert a.image == b.image and list(a.heads) == list(b.heads)
    for head in a.heads:
        x, y = a[head], b[head]
        assert type(x) is type(y)
        if isinstance(x, Detections):
            assert x.labels.tolist() == y.labels.tolist()
            np.testing.assert_allclose(x.boxes, y.boxes, atol=boxes_px)
            np.testing.assert_allclose(x.scores, y.scores, atol=probability)
        elif isinstance(x, Classes):
            assert x.names == y.names
            np.testing.assert_allclose(x.probabilities, y.probabilities, atol=probability)
        elif isinstance(x, Attributes):
            assert x.present == y.present
            np.testing.assert_allclose(list(x.probabilities.values()), list(y.probabilities.values()), atol=probability)
        else:
            assert [c["token"] for c in x.cells] == [c["token"] for c in y.cells] and (x.lat, x.lon) == (y.lat, y.lon)
            np.testing.assert_allclose(
                [c["probability"] for c in x.cells], [c["probability"] for c in y.cells], atol=probability
            )


@pytest.mark.parametrize("name", list(KINDS))
def test_a_checkpoint_and_its_onnx_export_give_the_same_results(models: dict, name: str) -> None:
    from_ckpt = mobivision.load(models[name]["ckpt"], batch_size=3)(IMAGES, score_threshold=0.0, top_k=3)
    from_onnx = mobivision.load(models[name]["onnx"], batch_size=2)(IMAGES, score_threshold=0.0, top_k=3)
    assert len(from_ckpt) == len(from_onnx) == len(IMAGES)
    for a, b in zip(from_ckpt, from_onnx, strict=True):
        assert isinstance(a.head, KINDS[name])
        _assert_same(a, b)
    if name == "detector":  # boxes are kept at score 0, so the comparison covers many of them
        assert sum(len(r.head.scores) for r in from_ckpt) > 20
        for a, b in zip(from_ckpt, mobivision.load(models[name]["nms"])(IMAGES, score_threshold=0.0), strict=True):
            _assert_same(a, b)


@pytest.mark.parametrize("name", list(KINDS))
def test_an_openvino_export_gives_the_results_of_the_onnx_file(models: dict, name: str) -> None:
    _needs_openvino()
    from_onnx = mobivision.load(models[name]["onnx"])
    from_ir = mobivision.load(models[name]["xml"], batch_size=3, threads=1)
    for a, b in zip(
        from_onnx(IMAGES, score_threshold=0.0, top_k=3), from_ir(IMAGES, score_threshold=0.0, top_k=3), strict=True
    ):
        assert isinstance(b.head, KINDS[name])
        _assert_same(a, b)
    if name == "detector":
        assert sum(len(r.head.scores) for r in from_ir(IMAGES, score_threshold=0.0)) > 20
    # fp16 weights: the raw outputs within the export's fp16 tolerance (near-ties of these random-weight models may
    # swap places in a ranking, so the outputs are compared rather than the ranked results)
    batch, _ = prepare_batch(IMAGES, from_onnx.preprocessing)
    expected, got = from_onnx.runtime.run(batch), mobivision.load(models[name]["fp16"]).runtime.run(batch)
    assert list(got) == list(expected)
    for output, want in expected.items():
        np.testing.assert_allclose(got[output], want, atol=FP16_ATOL + FP16_RTOL * np.abs(want).max(), rtol=0)


@pytest.mark.parametrize("name", list(KINDS))
def test_an_openvino_ir_holds_the_onnx_files_metadata_and_its_files_are_in_the_manifest(
    models: dict, name: str
) -> None:
    _needs_openvino()
    onnx = mobivision.load(models[name]["onnx"]).metadata
    for file, weights in (("xml", "fp32"), ("fp16", "fp16")):
        stored = dict(mobivision.load(models[name][file]).metadata)
        assert stored.pop("openvino_weights").startswith(weights)
        assert stored == onnx
    report = json.loads((models[name]["out"] / "export_report.json").read_text())
    assert {"model.xml", "model.bin", "model.fp16.xml", "model.fp16.bin", "model.onnx"} <= set(report["files"])
    rows = {row["format"]: row for row in report["rows"]}
    assert rows["openvino"]["ok"] and rows["openvino-fp16"]["ok"]
    ir_bytes = sum((models[name]["out"] / f).stat().st_size for f in ("model.xml", "model.bin"))
    assert rows["openvino"]["size_mb"] == pytest.approx(ir_bytes / 2**20, abs=1e-4)  # the weights file counted


def test_the_numpy_ssd_decoding_equals_the_tasks_decoding(models: dict) -> None:
    task = load_task(models["detector"]["ckpt"]).eval()
    predictor = mobivision.load(models["detector"]["onnx"])
    torch.manual_seed(0)
    cls_logits, regression = torch.randn(3, 1000, 4) * 3, torch.randn(3, 1000, 4)
    anchors = torch.rand(1000, 4) * 64
    anchors[:, 2:] += anchors[:, :2] + 4
    options = task.model.postprocess_options
    expected = decode_detections(
        cls_logits, regression, anchors, image_size=task.input_size, box_coder=task.model.box_coder,
        score_threshold=options.score_threshold, nms_iou=options.nms_iou, topk_candidates=options.topk_candidates,
        max_detections=options.max_detections,
    )  # fmt: skip
    got = decode_ssd(cls_logits.numpy(), regression.numpy(), anchors.numpy(), predictor.metadata)
    for want, (boxes, scores, labels) in zip(expected, got, strict=True):
        assert labels.tolist() == want["labels"].tolist()
        np.testing.assert_allclose(boxes, want["boxes"].numpy(), atol=1e-4)
        np.testing.assert_allclose(scores, want["scores"].numpy(), atol=1e-6)


def test_every_input_kind_gives_the_same_result(models: dict, tmp_path: Path) -> None:
    predictor = mobivision.load(models["classifier"]["onnx"])
    image = IMAGES[1]
    Image.fromarray(image).save(tmp_path / "photo.png")
    as_chw = torch.from_numpy(image).permute(2, 0, 1)
    inputs = [
        tmp_path / "photo.png",
        str(tmp_path / "photo.png"),
        Image.fromarray(image),
        image,
        as_chw,
        as_chw / 255.0,
    ]
    results = predictor(inputs, names=["photo"] * len(inputs))
    for result in results[1:]:
        _assert_same(results[0], result, probability=0.0)
    assert predictor(tmp_path / "photo.png").image == "photo.png"  # one input: one result, named after the file
    grey = predictor(image[..., 0])  # H x W grey
    assert isinstance(grey.head, Classes)


def test_each_heads_result_has_the_predict_schema(models: dict) -> None:
    image = IMAGES[0]
    detections = mobivision.load(models["detector"]["onnx"])(image, score_threshold=0.0).to_dict()
    assert detections["image"] == "image_0" and detections["detections"]
    first = detections["detections"][0]
    assert set(first) == {"image_id", "category_id", "bbox", "score", "category_name"}
    x, y, w, h = first["bbox"]
    assert 0 <= x <= image.shape[1] and 0 <= y <= image.shape[0] and w >= 0 and h >= 0
    assert first["category_name"] in ("circle", "square", "triangle") and first["category_id"] in (1, 2, 3)
    classes = mobivision.load(models["classifier"]["onnx"])(image, top_k=4).to_dict()
    assert list(classes) == ["image", "top_k"] and len(classes["top_k"]) == 4
    assert sum(c["probability"] for c in classes["top_k"]) <= 1.0 + 1e-4
    attributes = mobivision.load(models["attributes"]["onnx"])(image).to_dict()
    assert set(attributes["probabilities"]) == {"glasses", "hat", "smile"}
    thresholds = {"glasses": 0.3, "hat": 0.5, "smile": 0.7}
    assert attributes["present"] == sorted(
        (n for n, p in attributes["probabilities"].items() if p >= thresholds[n]),
        key=lambda n: -attributes["probabilities"][n],
    )
    location = mobivision.load(models["geo"]["onnx"])(image, top_k=2).to_dict()
    assert set(location) == {"image", "lat", "lon", "top_k"} and len(location["top_k"]) == 2
    assert (location["lat"], location["lon"]) == (location["top_k"][0]["lat"], location["top_k"][0]["lon"])
    json.dumps([detections, classes, attributes, location])  # JSON-ready


def test_plot_draws_the_results_and_save_writes_json_or_a_picture(models: dict, tmp_path: Path) -> None:
    result = mobivision.load(models["detector"]["onnx"])(IMAGES[3], score_threshold=0.0)
    picture = result.plot()
    assert picture.size == (IMAGES[3].shape[1], IMAGES[3].shape[0])
    assert np.any(np.asarray(picture) != IMAGES[3])  # something was drawn
    assert json.loads(result.save(tmp_path / "r.json").read_text()) == result.to_dict()
    assert Image.open(result.save(tmp_path / "r.jpg")).size == picture.size


def test_bad_inputs_are_one_clear_error(models: dict, tmp_path: Path) -> None:
    with pytest.raises(WeightFileError, match="model file not found"):
        mobivision.load(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(WeightFileError, match="cannot open as an ONNX model"):
        mobivision.load(tmp_path / "junk.onnx")
    if openvino_ir.available():
        (tmp_path / "junk.xml").write_text("<net>not an IR")
        with pytest.raises(WeightFileError, match=r"junk\.xml: cannot open as an OpenVINO IR"):
            mobivision.load(tmp_path / "junk.xml")
        unpaired = tmp_path / "unpaired.xml"
        unpaired.write_bytes(models["classifier"]["xml"].read_bytes())  # its model.bin is not beside it
        with pytest.raises(WeightFileError, match=r"unpaired\.xml: cannot open as an OpenVINO IR"):
            mobivision.load(unpaired)
        with pytest.raises(ConfigError, match="an OpenVINO IR runs on the CPU"):
            mobivision.load(models["classifier"]["xml"], device="cuda")
    predictor = mobivision.load(models["classifier"]["onnx"])
    with pytest.raises(ConfigError, match="an array image must be H x W x 3 uint8"):
        predictor(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ConfigError, match="score_threshold"):
        predictor(IMAGES[0], score_threshold=2.0)


def test_a_run_folder_or_a_folder_of_runs_loads_the_newest_runs_best_checkpoint(models: dict, tmp_path: Path) -> None:
    runs = tmp_path / "runs" / "demo_x"
    for run, model in (("2026-12-01_09-00-00", "classifier"), ("2026-12-02_08-00-00", "attributes")):
        (runs / run / "checkpoints").mkdir(parents=True)
        shutil.copy(models[model]["ckpt"], runs / run / "checkpoints" / "best.ckpt")
    (runs / "2026-12-03_07-00-00").mkdir()  # a run that has not written its best checkpoint yet
    assert mobivision.load(runs).kind == "attributes"  # the newest run with a best checkpoint
    assert mobivision.load(runs / "2026-12-01_09-00-00").kind == "classification"
    with pytest.raises(WeightFileError, match="a folder, but neither a run"):
        mobivision.load(runs / "2026-12-03_07-00-00")


TORCH_FREE = """
import json, sys
sys.modules["torch"] = None  # importing torch (or anything that does: lightning, torchvision) now fails
sys.modules["lightning"] = None
import mobivision
predictor = mobivision.load(sys.argv[1])
results = predictor([sys.argv[2]], score_threshold=0.0)
assert not any(m in sys.modules for m in ("torchvision", "albumentations")), "a torch package was imported"
print(json.dumps([r.to_dict() for r in results]))
"""


@pytest.mark.parametrize(("name", "file"), [("detector", "onnx"), ("geo", "onnx"), ("detector", "xml"), ("geo", "xml")])
def test_the_exported_files_run_without_torch(models: dict, name: str, file: str, tmp_path: Path) -> None:
    if file == "xml":
        _needs_openvino()
    Image.fromarray(IMAGES[0]).save(tmp_path / "photo.png")
    script = tmp_path / "torch_free.py"
    script.write_text(textwrap.dedent(TORCH_FREE))
    done = subprocess.run(
        [sys.executable, str(script), str(models[name][file]), str(tmp_path / "photo.png")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    expected = mobivision.load(models[name][file])([tmp_path / "photo.png"], score_threshold=0.0)
    assert json.loads(done.stdout) == [json.loads(json.dumps(r.to_dict())) for r in expected]


@pytest.mark.parametrize("source", ["ckpt", "onnx"])
def test_the_inference_benchmark_times_the_api_against_a_hand_written_loop(models: dict, source: str) -> None:
    args = build_parser().parse_args(
        ["inference", str(models["classifier"][source]), "--images", "5", "--batch", "2", "--repeats", "1"]
    )
    report = run_inference(args)
    rates = report["images_per_s"]
    assert set(rates) == {"api", "loop"} and min(rates.values()) > 0
    assert report["api_over_loop"] == pytest.approx(rates["api"] / rates["loop"])
    assert (report["kind"], report["images"], report["batch"]) == ("classification", 5, 2)


def test_the_benchmark_photos_are_real_jpegs(tmp_path: Path) -> None:
    paths = write_photos(tmp_path, 3)
    sizes = [Image.open(p).size for p in paths]
    assert all(p.suffix == ".jpg" and Image.open(p).format == "JPEG" for p in paths)
    assert all(560 <= w < 720 and 400 <= h < 560 for w, h in sizes) and len(set(sizes)) == 3
