"""``mobivision serve``: the JSON endpoint ``POST /predict`` and the page, through Starlette's test client (no
socket), on a tiny detector (exported to ONNX) and a tiny geo model (its checkpoint)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mobivision
from mobivision.commands.export import export_task
from mobivision.commands.serve import build_app, main, outline_path, size_text
from mobivision.tasks.runner import load_task

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install 'mobivision[serve]'")
pytest.importorskip("httpx", reason="starlette.testclient needs httpx: pip install httpx")
from starlette.testclient import TestClient

# Exports a tiny detector to ONNX: a few seconds.
pytestmark = pytest.mark.slow


def _photo(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth random RGB picture (blobs, not noise), so a detector's scores spread."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC))


@pytest.fixture(scope="module")
def predictors(tiny_task_checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny detector from its ONNX export, the tiny geo model from its checkpoint."""
    out = tmp_path_factory.mktemp("export_detector")
    ckpt = tiny_task_checkpoints["detector"]
    export_task(load_task(ckpt).eval(), out, formats="onnx", parity_images=1, checkpoint=ckpt)
    return {"detector": mobivision.load(out / "model.onnx"), "geo": mobivision.load(tiny_task_checkpoints["geo"])}


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PNG whose short side is >= 256 px, so ``Result.plot()`` keeps its size."""
    path = tmp_path_factory.mktemp("photos") / "street.png"
    Image.fromarray(_photo(280, 360, 0)).save(path)
    return path


def _post(client: TestClient, path: Path, content_type: str = "image/png"):
    with path.open("rb") as file:
        return client.post("/predict", files={"image": (path.name, file, content_type)})


@pytest.mark.parametrize("name", ["detector", "geo"])
def test_predict_answers_the_results_the_line_and_the_picture(predictors: dict, photo: Path, name: str) -> None:
    predictor = predictors[name]
    client = TestClient(build_app(predictor, max_upload_bytes=10_000_000))
    response = _post(client, photo)
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = predictor(photo, score_threshold=0.3, top_k=5)
    assert answer["result"] == json.loads(json.dumps(expected.to_dict()))
    assert answer["line"] == expected.line()
    header, data = answer["picture"].split(",", 1)
    assert header == "data:image/jpeg;base64"
    picture = Image.open(io.BytesIO(base64.b64decode(data)))
    assert picture.format == "JPEG" and picture.size == Image.open(photo).size
    if name == "geo":
        assert {"lat", "lon", "top_k"} <= set(answer["result"])
    else:
        assert answer["result"]["image"] == "street.png"


def test_bad_uploads_get_a_clear_error_and_the_server_keeps_serving(
    predictors: dict, photo: Path, tmp_path: Path
) -> None:
    client = TestClient(build_app(predictors["detector"], max_upload_bytes=1000))
    text = tmp_path / "photo.txt"
    text.write_text("not an image at all\n" * 10)
    response = _post(client, text, "text/plain")
    assert response.status_code == 415
    assert response.json()["error"].startswith("photo.txt is not an image Pillow can read (")

    response = _post(client, photo)  # far over 1000 bytes
    assert response.status_code == 413
    size = size_text(photo.stat().st_size)
    assert response.json() == {"error": f"street.png is {size}, larger than the 0.001 MB limit (--max-upload-mb)"}

    huge = tmp_path / "huge.jpg"  # Content-Length far over the limit: rejected before the body is read
    huge.write_bytes(b"\xff" * 1_500_000)
    response = _post(client, huge, "image/jpeg")
    assert response.json() == {"error": "the upload is 1.5 MB, larger than the 0.001 MB limit (--max-upload-mb)"}

    assert client.post("/predict", files={"other": ("a.png", b"123", "image/png")}).status_code == 400
    assert client.post("/predict", content=b"plain body").status_code == 400
    assert client.get("/predict").status_code == 405

    small = tmp_path / "small.png"  # then a good request still works
    Image.fromarray(_photo(20, 24, 1)).save(small)
    assert small.stat().st_size <= 1000
    response = _post(client, small)
    assert response.status_code == 200, response.text
    assert response.json()["line"] == predictors["detector"](small).line()


def test_the_page_is_served_with_the_model_limit_and_map(predictors: dict) -> None:
    client = TestClient(build_app(predictors["geo"], max_upload_bytes=2_500_000, model_name="runs/geo <best>.ckpt"))
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert 'id="file"' in page and 'id="error"' in page and 'id="map"' in page
    assert "runs/geo &lt;best&gt;.ckpt" in page and "geo model" in page
    assert "const LIMIT = 2500000;" in page and "up to 2.5 MB" in page
    assert "__" + "OUTLINE__" not in page and outline_path() in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        '"http://www.w3.org/2000/svg"', ""
    )  # nothing is fetched from elsewhere


def test_serve_with_a_missing_model_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(tmp_path / "missing.ckpt"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.ckpt" in err and len(err.strip().splitlines()) == 1
