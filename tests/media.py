"""Test media made from the photos of Debian's `darknet` package; no media file is committed.

The walk scene: the person from person.jpg crosses a panning horses.jpg background. Every frame
comes with the box where the person was pasted, so tests can compare detections with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

DARKNET_DATA = Path("/usr/share/darknet/data")
PERSON_PHOTO = DARKNET_DATA / "person.jpg"
BACKGROUND_PHOTO = DARKNET_DATA / "horses.jpg"
# Where the standing person is in person.jpg (640x424), in pixels: the crop pasted into the
# scene, and the person's own outline inside it (the ground truth).
PERSON_CROP = (165, 85, 295, 405)  # x0, y0, x1, y1
PERSON_BODY = (183, 100, 275, 385)
PERSON_HEIGHT = 0.7  # of the frame height
FEATHER_PX = 3  # soft paste edge, so the crop's border is not a sharp rectangle


@dataclass(frozen=True)
class Box:
    """Normalised to the frame: 0..1 from the left and from the top."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float

    def iou(self, other: Box) -> float:
        w = min(self.xmax, other.xmax) - max(self.xmin, other.xmin)
        h = min(self.ymax, other.ymax) - max(self.ymin, other.ymin)
        inter = max(w, 0.0) * max(h, 0.0)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    @property
    def area(self) -> float:
        return max(self.xmax - self.xmin, 0.0) * max(self.ymax - self.ymin, 0.0)


@dataclass(frozen=True)
class WalkFrame:
    image: np.ndarray  # BGR, as OpenCV reads and writes
    person: Box


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(f"{path}: missing or unreadable; install Debian's darknet package")
    return image


def walk_frames(frames: int, size: tuple[int, int] = (1280, 720)) -> Iterator[WalkFrame]:
    """The walk scene, frame by frame: the person walks left to right while the view pans."""
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    width, height = size
    person_photo = _read(PERSON_PHOTO)
    x0, y0, x1, y1 = PERSON_CROP
    crop = person_photo[y0:y1, x0:x1]
    scale = PERSON_HEIGHT * height / crop.shape[0]
    crop = cv2.resize(crop, (round(crop.shape[1] * scale), round(crop.shape[0] * scale)))
    crop_h, crop_w = crop.shape[:2]
    mask = np.zeros((crop_h, crop_w), np.float32)
    mask[FEATHER_PX:-FEATHER_PX, FEATHER_PX:-FEATHER_PX] = 1.0
    mask = cv2.GaussianBlur(mask, (0, 0), FEATHER_PX / 2)[..., np.newaxis]

    # The background is wider than the frame by half, so the view can pan across it.
    background = _read(BACKGROUND_PHOTO)
    bg_scale = max(1.5 * width / background.shape[1], height / background.shape[0])
    background = cv2.resize(
        background,
        (round(background.shape[1] * bg_scale), round(background.shape[0] * bg_scale)),
    )
    pan_range = background.shape[1] - width
    top = (background.shape[0] - height) // 2

    body_x0, body_y0, body_x1, body_y1 = PERSON_BODY
    for i in range(frames):
        progress = i / max(frames - 1, 1)
        pan = round(pan_range * progress)
        image = background[top : top + height, pan : pan + width].copy()
        left = round((width - crop_w) * (0.05 + 0.9 * progress))
        # A small bob, so the walker does not glide.
        upper = round((height - crop_h) * (0.7 + 0.03 * np.sin(progress * 8 * np.pi)))
        region = image[upper : upper + crop_h, left : left + crop_w].astype(np.float32)
        blended = crop.astype(np.float32) * mask + region * (1.0 - mask)
        image[upper : upper + crop_h, left : left + crop_w] = blended.astype(np.uint8)
        person = Box(
            xmin=(left + (body_x0 - x0) * scale) / width,
            ymin=(upper + (body_y0 - y0) * scale) / height,
            xmax=(left + (body_x1 - x0) * scale) / width,
            ymax=(upper + (body_y1 - y0) * scale) / height,
        )
        yield WalkFrame(image=image, person=person)


def make_walk_video(
    path: Path, frames: int = 45, size: tuple[int, int] = (1280, 720), fps: int = 15
) -> list[Box]:
    """Write the walk scene as an mp4v .mp4; return the person's box in each frame."""
    path = Path(path)
    if path.suffix != ".mp4":
        raise ValueError(f"{path}: make_walk_video writes mp4v in an .mp4 file")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot open an mp4v writer")
    boxes = []
    try:
        for frame in walk_frames(frames, size):
            writer.write(frame.image)
            boxes.append(frame.person)
    finally:
        writer.release()
    return boxes


def make_image_folder(
    directory: Path, n: int, size: tuple[int, int] = (1280, 720)
) -> list[tuple[Path, Box]]:
    """Write `n` JPEG frames of the walk scene; return each file with the person's box."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for i, frame in enumerate(walk_frames(n, size)):
        path = directory / f"frame_{i:04d}.jpg"
        if not cv2.imwrite(str(path), frame.image):
            raise RuntimeError(f"{path}: OpenCV could not write it")
        written.append((path, frame.person))
    return written
