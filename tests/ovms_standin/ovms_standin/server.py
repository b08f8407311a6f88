"""Start-up, readiness and shutdown, in the order OVMS goes through them."""

from __future__ import annotations

import os
import pathlib
import signal
import threading
from concurrent import futures

import grpc
import openvino as ov
from ovmsclient.tfs_compat.protos.tensorflow_serving.apis import (
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)
from tritonclient.grpc import service_pb2_grpc

from . import __version__, logs
from .cli import ServerSettings
from .config import ConfigError, ServerConfig, single_model_document
from .devices import Record
from .kserve_service import InferenceService
from .manager import ModelManager
from .metrics import Registry
from .rest import RestApi, RestServer
from .tfs_service import ModelService, PredictionService

EXIT_FAILURE = 1
GRPC_WORKERS = 16
MAX_MESSAGE_BYTES = 1024 * 1024 * 1024
# Newer OVMS releases dropped the TensorFlow Serving API; this switch mimics them.
TFS_API_ENV = "OVMS_STANDIN_TFS_API"


class _UnsupportedPluginConfig(ConfigError):
    """Single-model mode: the model's plugin_config has a key its device does not support."""


class Server:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.registry = Registry()
        self.manager = ModelManager(settings.config_path, self.registry)
        self.version = f"standin-{__version__} (OpenVINO {ov.get_version()})"
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._grpc: grpc.Server | None = None
        self._rest: RestServer | None = None

    def is_ready(self) -> bool:
        return self._ready.is_set()

    def _initial_config(self) -> tuple[ServerConfig, list[Record]]:
        settings = self.settings
        if settings.config_path:
            return self.manager.read_config()
        assert settings.model_name and settings.model_path
        text = single_model_document(
            settings.model_name, settings.model_path, settings.single_model
        )
        config, problems = self.manager.parse(text, pathlib.Path.cwd())
        if config.stopped_at is not None:
            # Single-model mode: OVMS's ModelManager::startFromConfig returns the error, so
            # the model manager does not start and ovms exits 1.
            for level, line in problems[:-1]:
                logs.modelmanager.log(level, "%s", line)
            raise _UnsupportedPluginConfig("Plugin config contains unsupported keys")
        return config, problems

    def _enable_metrics(self, config: ServerConfig) -> None:
        enabled = self.settings.metrics_enable or bool(config.metrics_enable)
        if not enabled:
            return
        if not self.settings.rest_port:
            logs.serving.error("rest_port setting is missing, metrics are enabled on rest port")
            return
        families = self.settings.metrics_list or config.metrics_list
        self.registry.enable(families)

    def _start_grpc(self) -> None:
        settings = self.settings
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=GRPC_WORKERS, thread_name_prefix="grpc"),
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        if os.environ.get(TFS_API_ENV, "on").lower() != "off":
            prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
                PredictionService(self.manager), server
            )
            model_service_pb2_grpc.add_ModelServiceServicer_to_server(
                ModelService(self.manager), server
            )
        else:
            logs.serving.info("TensorFlow Serving API is off (%s=off)", TFS_API_ENV)
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceService(self.manager, self.is_ready, self.version), server
        )
        address = f"{settings.grpc_bind_address}:{settings.port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError:
            bound = 0
        if not bound:
            raise OSError(f"Failed to start gRPC server: cannot bind {address}")
        server.start()
        self._grpc = server
        logs.serving.info("Started gRPC server on %s", address)

    def _start_rest(self) -> None:
        settings = self.settings
        api = RestApi(
            self.manager, self.registry, self.is_ready, self.version, self.manager.reload_now
        )
        self._rest = RestServer(api, settings.rest_bind_address, settings.rest_port)
        self._rest.start()
        logs.serving.info(
            "REST server listening on %s:%d", settings.rest_bind_address, settings.rest_port
        )

    def run(self) -> int:
        logs.serving.info("OpenVINO Model Server stand-in %s", self.version)
        try:
            config, problems = self._initial_config()
            self._enable_metrics(config)
        except (ConfigError, ValueError) as error:
            logs.modelmanager.error("%s", error)
            logs.modelmanager.error("Couldn't start model manager")
            if isinstance(error, _UnsupportedPluginConfig):
                logs.serving.error("ovms::ModelManager::Start() Error: Model config is invalid")
            return EXIT_FAILURE
        try:
            if self.settings.port:
                self._start_grpc()
            if self.settings.rest_port:
                self._start_rest()
        except OSError as error:
            logs.serving.error("%s", error)
            self.shutdown()
            return EXIT_FAILURE
        self.manager.apply(config, problems)
        self._ready.set()
        logs.serving.info("Server is ready: initial configuration loaded")
        self.manager.start_watcher(self.settings.file_system_poll_wait_seconds)
        self._stop.wait()
        self.shutdown()
        return 0

    def request_stop(self, signum: int, _frame: object) -> None:
        logs.serving.info("Received signal %d; shutting down", signum)
        self._stop.set()

    def shutdown(self) -> None:
        self.manager.stop()
        if self._grpc is not None:
            self._grpc.stop(grace=1).wait(2)
        if self._rest is not None:
            self._rest.stop()
        logs.serving.info("Shutdown complete")


def serve(settings: ServerSettings) -> int:
    logs.setup(settings.log_level, settings.log_path)
    server = Server(settings)
    signal.signal(signal.SIGTERM, server.request_stop)
    signal.signal(signal.SIGINT, server.request_stop)
    return server.run()
