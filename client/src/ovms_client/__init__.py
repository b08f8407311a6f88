"""Inference client for OpenVINO Model Server (KServe and TensorFlow-Serving gRPC APIs)."""

__version__ = "0.1.0"
