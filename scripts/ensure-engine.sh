#!/usr/bin/env bash
# Make a Docker Engine answer on this machine, installing Debian's docker.io when none is
# installed. CI starts on a fresh machine, so every entry point (make test, make demo) calls this.
set -euo pipefail

log_dir="${CACHE_DIR:-.cache}"
mkdir -p "$log_dir"

apt_packages=()
command -v dockerd >/dev/null 2>&1 || apt_packages+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || apt_packages+=(debootstrap)
# Real photos for test media come from Debian's darknet package.
[ -f /usr/share/darknet/data/person.jpg ] || apt_packages+=(darknet)
# TLS tests make their certificates with the openssl command.
command -v openssl >/dev/null 2>&1 || apt_packages+=(openssl)
# The client's MQTT test runs its own broker on loopback.
[ -x /usr/sbin/mosquitto ] || apt_packages+=(mosquitto)
# An RTSP camera on loopback for the client's RTSP test: GStreamer's RTSP server through the
# system Python's GObject bindings, sending JPEG frames as RTP (no encoder needed).
/usr/bin/python3 -c 'import gi; gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst; Gst.init(None); assert Gst.ElementFactory.find("rtpjpegpay")' 2>/dev/null \
  || apt_packages+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good)

if [ "${#apt_packages[@]}" -gt 0 ]; then
  echo "ensure-engine: installing ${apt_packages[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >"$log_dir/apt.log" 2>&1 \
    || { cat "$log_dir/apt.log"; exit 1; }
fi

if docker info >/dev/null 2>&1; then
  exit 0
fi

echo "ensure-engine: starting dockerd (log: $log_dir/dockerd.log)"
nohup dockerd >"$log_dir/dockerd.log" 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "ensure-engine: Docker Engine is up"
    exit 0
  fi
  sleep 1
done
echo "ensure-engine: dockerd did not answer within 60 s; last log lines:" >&2
tail -n 20 "$log_dir/dockerd.log" >&2
exit 1
