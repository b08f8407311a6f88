"""RealSense recordings made without a camera: librealsense's software device stands in for
one, and its recorder writes what the device streams to a file, as `rs-record` would.

pyrealsense2 2.57 and older write ROS1 .bag files; 2.58 and later write ROS2 .db3 files only
(they still play .bag back). The file name's suffix is what librealsense goes by.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

FOCAL_PX = 600.0


def record(path: Path, frames: Iterable[np.ndarray], fps: int = 15) -> int:
    """Write BGR frames (all one size) as the rgb8 colour stream of a recording; the count."""
    import pyrealsense2 as rs

    images = iter(frames)
    first = next(images)
    height, width = first.shape[:2]
    device = rs.software_device()
    sensor = device.add_sensor("RGB Camera")

    intrinsics = rs.intrinsics()
    intrinsics.width, intrinsics.height = width, height
    intrinsics.ppx, intrinsics.ppy = width / 2, height / 2
    intrinsics.fx = intrinsics.fy = FOCAL_PX
    intrinsics.model, intrinsics.coeffs = rs.distortion.none, [0.0] * 5

    stream = rs.video_stream()
    stream.type, stream.index, stream.uid = rs.stream.color, 0, 0
    stream.width, stream.height, stream.fps = width, height, fps
    stream.bpp, stream.fmt, stream.intrinsics = 3, rs.format.rgb8, intrinsics
    profile = sensor.add_video_stream(stream)

    recorder = rs.recorder(str(path), device)
    queue = rs.frame_queue(64)
    sensor.open(profile)
    sensor.start(queue)
    count = 0
    for index, image in enumerate([first, *images]):
        if image.shape[:2] != (height, width):
            raise ValueError(f"frame {index} is {image.shape[1]}x{image.shape[0]}, not {width}x{height}")
        pixels = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        frame = rs.software_video_frame()
        frame.pixels, frame.stride, frame.bpp = pixels, width * 3, 3
        frame.timestamp = index * 1000.0 / fps
        frame.domain = rs.timestamp_domain.hardware_clock
        frame.frame_number = index
        frame.profile = profile.as_video_stream_profile()
        sensor.on_video_frame(frame)
        while queue.poll_for_frame():
            pass
        count += 1
    sensor.stop()
    sensor.close()
    # The file is complete once the recorder (and the device it wraps) are gone.
    del recorder
    del device
    return count
