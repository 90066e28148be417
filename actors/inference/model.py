"""The model: PP-OCRv4 text detection and recognition (ONNX files shipped inside the
``rapidocr-onnxruntime`` wheel) on onnxruntime's CPU provider. Nothing is downloaded: the files are
read from the installed package.

``OcrModel.predict(images)`` reads a batch at once:

* detection: every image is resized so its longer side is at most ``det_max_side`` (a multiple of
  32), the batch is padded (white) to one shape and run as ONE detector call; each image's map is
  cropped back to its own region before the DB post-processing finds its text boxes;
* recognition: the text-line crops of ALL images of the batch go through the recognizer, sorted
  by width, ``rec_batch`` lines per call (padded to the widest of the call). On the project's
  2-core machine one line per call is fastest (a call of 8 lines cost ~1.4x more per line), so
  the service passes ``rec_batch=1``; a machine whose recognizer amortises passes more.

Both steps are plain functions of their inputs: the same image gives the same text. Decoding is
Pillow's; an input Pillow cannot read raises ``ImageDecodeError`` for that image only (the caller
answers it as failed). ``Image.MAX_IMAGE_PIXELS`` is the caller's decompression-bomb limit:
``DecompressionBombError`` is not caught here.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["ImageDecodeError", "OcrLine", "OcrModel", "model_version"]

_PACKAGE = "rapidocr-onnxruntime"
_DET = "ch_PP-OCRv4_det_infer.onnx"
_REC = "ch_PP-OCRv4_rec_infer.onnx"


def model_version() -> str:
    """What results are keyed by beside the image hash: the detector and recognizer files and the
    wheel that ships them (a new wheel is a new version, so its results are computed afresh)."""
    return f"ppocrv4-det+rec/{_PACKAGE}-{version(_PACKAGE)}"


class ImageDecodeError(ValueError):
    """The bytes are not an image Pillow can decode (not an image, truncated)."""


@dataclass(frozen=True, slots=True)
class OcrLine:
    """One text line: its text, the recognizer's confidence, its box (x0, y0, x1, y1) in the
    image's own pixels."""

    text: str
    score: float
    box: tuple[int, int, int, int]


def decode(data: bytes) -> Image.Image:
    """Pillow-decoded RGB image; ImageDecodeError for what Pillow cannot read."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageDecodeError(f"not a readable image: {exc}") from None
    return image.convert("RGB")


class OcrModel:
    """The detector and recognizer sessions, loaded once (~0.5 s); not thread-safe.

    ``threads`` is onnxruntime's intra-op thread count (1: one worker process per core).
    ``text_score`` drops lines the recognizer is less sure of.
    """

    def __init__(self, *, threads: int = 1, det_max_side: int = 640, rec_batch: int = 64,
                 text_score: float = 0.5) -> None:
        from rapidocr_onnxruntime import RapidOCR  # ~0.3 s of imports: only where a model runs

        self.version = model_version()
        self.det_max_side = max(32, det_max_side // 32 * 32)
        self.text_score = text_score
        engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)
        self._engine = engine
        self._det_session = engine.text_det.infer
        self._det_post = engine.text_det.postprocess_op
        self._filter_boxes = engine.text_det.filter_tag_det_res
        self._recognizer = engine.text_rec
        self._recognizer.rec_batch_num = rec_batch
        self._mean = np.array([0.5, 0.5, 0.5], dtype=np.float32)
        self._std = np.array([0.5, 0.5, 0.5], dtype=np.float32)
        for name in (_DET, _REC):
            path = os.path.join(os.path.dirname(_rapidocr_file()), "models", name)
            if not os.path.exists(path):
                raise FileNotFoundError(f"{_PACKAGE} does not ship {name}")

    def predict(self, images: list[Image.Image]) -> list[list[OcrLine]]:
        """The text lines of each image, in reading order (top to bottom, left to right)."""
        if not images:
            return []
        arrays = [np.asarray(image.convert("RGB")) for image in images]
        boxes = self._detect(arrays)
        crops: list[np.ndarray] = []
        owners: list[tuple[int, tuple[int, int, int, int]]] = []
        for index, (array, image_boxes) in enumerate(zip(arrays, boxes)):
            if len(image_boxes) == 0:
                continue
            ordered = self._engine.sorted_boxes(image_boxes)
            # PP-OCR crops from BGR arrays (cv2); the recognizer was trained so.
            bgr = np.ascontiguousarray(array[:, :, ::-1])
            for crop, box in zip(self._engine.get_crop_img_list(bgr, ordered), ordered):
                crops.append(crop)
                xs, ys = box[:, 0], box[:, 1]
                owners.append((index, (int(xs.min()), int(ys.min()), int(xs.max()),
                                       int(ys.max()))))
        lines: list[list[OcrLine]] = [[] for _ in images]
        if crops:
            recognized, _elapsed = self._recognizer(crops)
            for (index, box), (text, score) in zip(owners, recognized):
                if score >= self.text_score and text.strip():
                    lines[index].append(OcrLine(text=text, score=float(score), box=box))
        return lines

    def _detect(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """One detector call for the batch: each image scaled (longer side <= det_max_side,
        multiples of 32) and padded white to the batch's largest shape."""
        sizes = [_scaled_size(a.shape[0], a.shape[1], self.det_max_side) for a in arrays]
        height = max(h for h, _ in sizes)
        width = max(w for _, w in sizes)
        batch = np.ones((len(arrays), height, width, 3), dtype=np.float32)
        for index, (array, (h, w)) in enumerate(zip(arrays, sizes)):
            resized = Image.fromarray(array).resize((w, h), Image.Resampling.BILINEAR)
            batch[index, :h, :w] = np.asarray(resized, dtype=np.float32) / 255.0
        batch = ((batch - self._mean) / self._std).transpose(0, 3, 1, 2)
        maps = self._det_session(np.ascontiguousarray(batch))[0]
        found = []
        for index, (array, (h, w)) in enumerate(zip(arrays, sizes)):
            own = maps[index:index + 1, :, :h, :w]
            shape = (array.shape[0], array.shape[1])
            boxes, _scores = self._det_post(own, shape)
            found.append(self._filter_boxes(boxes, shape) if len(boxes) else np.zeros((0, 4, 2)))
        return found


def _scaled_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    ratio = min(1.0, max_side / max(height, width))
    return (max(32, round(height * ratio / 32) * 32), max(32, round(width * ratio / 32) * 32))


def _rapidocr_file() -> Any:
    import rapidocr_onnxruntime

    return rapidocr_onnxruntime.__file__
