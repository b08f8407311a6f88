"""Turn a decoded frame into the tensor the model takes."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Preprocess:
    width: int
    height: int
    layout: str = "NHWC"
    color_order: str = "RGB"
    dtype: str = "uint8"
    mean: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        """BGR HxWx3 uint8 frame (as OpenCV decodes) -> batch-of-one input tensor.

        Resizing here rather than on the server keeps a 720p frame's ~2.7 MB off the wire:
        the request carries only the model's resolution.
        """
        if frame_bgr.ndim == 2:
            frame_bgr = cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
        elif frame_bgr.shape[2] == 4:
            frame_bgr = cv2.cvtColor(frame_bgr, cv2.COLOR_BGRA2BGR)
        image = frame_bgr
        if image.shape[1] != self.width or image.shape[0] != self.height:
            image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        if self.color_order == "RGB":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if self.layout == "NCHW":
            image = image.transpose(2, 0, 1)
        tensor = np.ascontiguousarray(image[np.newaxis, ...])
        if self.dtype != "uint8":
            tensor = tensor.astype(self.dtype)
            if self.mean:
                tensor -= self._per_channel(self.mean)
            if self.scale:
                tensor /= self._per_channel(self.scale)
        return tensor

    def _per_channel(self, values: tuple[float, ...]) -> np.ndarray:
        array = np.asarray(values, dtype=np.float32)
        if self.layout == "NCHW":
            return array.reshape(1, -1, 1, 1)
        return array.reshape(1, 1, 1, -1)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        if self.layout == "NCHW":
            return (1, 3, self.height, self.width)
        return (1, self.height, self.width, 3)
