"""The real model (PP-OCRv4 detection + recognition, ONNX files shipped in the rapidocr-onnxruntime
wheel) reads text the test renders with Pillow, alone and in batches. Loaded once for the module."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from actors.inference.load import render_text
from actors.inference.model import ImageDecodeError, OcrModel, decode, model_version


@pytest.fixture(scope="module")
def model() -> OcrModel:
    return OcrModel(threads=1)


def image(text: str, **kwargs: object) -> Image.Image:
    return decode(render_text(text, **kwargs))  # type: ignore[arg-type]


def test_the_model_files_ship_in_the_wheel_and_name_the_version() -> None:
    import rapidocr_onnxruntime

    models = Path(rapidocr_onnxruntime.__file__).parent / "models"
    assert (models / "ch_PP-OCRv4_det_infer.onnx").stat().st_size > 1_000_000
    assert (models / "ch_PP-OCRv4_rec_infer.onnx").stat().st_size > 1_000_000
    assert model_version().startswith("ppocrv4-det+rec/rapidocr-onnxruntime-1.4.4")


def test_it_reads_rendered_text(model: OcrModel) -> None:
    (lines,) = model.predict([image("HELLO 42")])
    assert [line.text for line in lines] == ["HELLO 42"]
    assert lines[0].score > 0.8
    x0, y0, x1, y1 = lines[0].box
    assert 0 <= x0 < x1 <= 288 and 0 <= y0 < y1 <= 64


def test_a_batch_reads_each_image_as_it_reads_it_alone(model: OcrModel) -> None:
    texts = ["Batch 7", "queue 12", "SQLite 5", "kill -9"]
    images = [image(t) for t in texts]
    batched = [[line.text for line in lines] for lines in model.predict(images)]
    alone = [[line.text for line in model.predict([img])[0]] for img in images]
    assert batched == alone == [[t] for t in texts]


def test_images_of_different_sizes_batch_together(model: OcrModel) -> None:
    big = image("LARGE 8", size=(400, 120), font_size=48)
    small = image("tiny 3")
    assert [[line.text for line in lines] for lines in model.predict([big, small])] == [
        ["LARGE 8"], ["tiny 3"]]


def test_two_lines_come_back_in_reading_order(model: OcrModel) -> None:
    picture = Image.new("RGB", (300, 140), "white")
    picture.paste(image("first 1"), (0, 0))
    picture.paste(image("second 2"), (0, 72))
    (lines,) = model.predict([picture])
    assert [line.text for line in lines] == ["first 1", "second 2"]


def test_a_blank_image_has_no_lines_and_bytes_that_are_no_image_do_not_decode(
        model: OcrModel) -> None:
    blank = Image.new("RGB", (224, 48), "white")
    assert model.predict([blank]) == [[]]
    with pytest.raises(ImageDecodeError):
        decode(b"\x89PNG\r\n\x1a\n" + os.urandom(64))   # a PNG signature, then garbage
    out = io.BytesIO()
    blank.save(out, format="JPEG")
    assert decode(out.getvalue()).size == (224, 48)
