"""``mobivision serve``: the JSON endpoint ``POST /predict`` and the page, through Starlette's test client (no
socket), on a tiny detector (exported to ONNX) and a tiny geo model (its checkpoint)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image

import mobivision
from mobivision.commands.export import export_task
from mobivision.commands.serve import build_app, main, outline_path, size_text
from mobivision.errors import ConfigError
from mobivision.tasks.runner import load_task

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install 'mobivision[serve]'")
pytest.importorskip("httpx", reason="starlette.testclient needs httpx: pip install httpx")
from image_files import header_only_png
from serving import serving, smooth_photo
from starlette.testclient import TestClient

# Exports a tiny detector to ONNX: a few seconds.
pytestmark = pytest.mark.slow


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
    Image.fromarray(smooth_photo(280, 360, 0)).save(path)
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
    Image.fromarray(smooth_photo(20, 24, 1)).save(small)
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


def test_images_over_the_pixel_limit_get_413_and_elongated_ones_a_result_without_a_picture(
    predictors: dict, tmp_path: Path
) -> None:
    client = TestClient(build_app(predictors["geo"], max_upload_bytes=10_000_000, max_image_mpx=50))
    bomb = header_only_png(tmp_path / "bomb.png", 12000, 12000)  # 57 bytes declaring 144 Mpx
    response = _post(client, bomb)
    assert response.status_code == 413
    assert response.json() == {
        "error": "bomb.png: 12000 x 12000 pixels (144.0 Mpx) is over the 50 Mpx limit (--max-image-mpx)"
    }
    for width, height, drawn in ((10000, 1, False), (600, 2, False), (2, 600, False), (64, 2, True)):
        strip = tmp_path / f"strip_{width}x{height}.png"
        Image.new("RGB", (width, height), (90, 120, 150)).save(strip)
        response = _post(client, strip)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["line"] == predictors["geo"](strip).line()
        if drawn:
            assert answer["picture"].startswith("data:image/jpeg;base64,") and "no_picture" not in answer
        else:
            assert answer["picture"] is None
            assert (
                answer["no_picture"] == f"{strip.name}: {width} x {height} pixels is too elongated to draw (over 32:1)"
            )
    with pytest.raises(ConfigError, match=r"max_image_mpx: nan is not valid"):
        build_app(predictors["geo"], max_image_mpx=float("nan"))


def _peak_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak memory from /proc (Linux)")
def test_parallel_large_uploads_take_the_memory_of_one(tiny_task_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """Eight valid 9-Mpx PNGs sent at once: the server decodes, predicts and draws one at a time, in one thread, so
    its peak grows by about what one image takes, not eight times that (before: 8 decodes in parallel, and the
    memory of each pool thread kept). The bound is relative to the server's own single-image figure."""
    import threading
    import urllib.request

    photos = []
    for index in range(8):
        photos.append(tmp_path / f"large{index}.png")
        Image.new("RGB", (3000, 3000), (30 * index, 100, 200)).save(photos[-1])  # 9 Mpx, a few kB

    def post(url: str, path: Path) -> int:
        boundary = "mobivision-test-boundary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{path.name}"\r\n'
                "Content-Type: image/png\r\n\r\n"
            ).encode()
            + path.read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        request = urllib.request.Request(url + "predict", data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status

    with serving(tiny_task_checkpoints["classifier"], "--max-image-mpx", "10") as (url, process):
        small = tmp_path / "small.png"
        Image.new("RGB", (64, 64)).save(small)
        assert post(url, small) == 200  # everything a request needs is loaded
        base = _peak_mb(process.pid)
        assert post(url, photos[0]) == 200
        one = _peak_mb(process.pid) - base
        statuses: list[int] = []
        threads = [threading.Thread(target=lambda p=p: statuses.append(post(url, p))) for p in photos]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        eight = _peak_mb(process.pid) - base
    assert statuses == [200] * 8
    assert one > 50  # the image is large enough to see: 27 MB of RGB, and its copies
    assert eight < 2 * one, f"one image: +{one:.0f} MB, eight at once: +{eight:.0f} MB"
