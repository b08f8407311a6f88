"""An RTSP camera on 127.0.0.1 for tests: GStreamer's RTSP server (Debian's
gir1.2-gst-rtsp-server-1.0) sends a folder of JPEG frames, looped, as RTP/JPEG at 10 frames/s.

Runs under the system Python, which has the GObject bindings:
    /usr/bin/python3 tests/rtsp_camera.py FRAMES_PATTERN WIDTH HEIGHT PORT
and serves rtsp://127.0.0.1:PORT/cam until it is terminated.
"""
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer


def main() -> None:
    pattern, width, height, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    # rtpjpegpay needs the frame size in the caps; every frame has the same size.
    factory.set_launch(
        f'( multifilesrc location="{pattern}" loop=true '
        f'caps="image/jpeg,framerate=10/1,width={width},height={height}" '
        "! rtpjpegpay name=pay0 pt=26 )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print("ready", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
