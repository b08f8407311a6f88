"""REST API on the stdlib ThreadingHTTPServer: TFS status/metadata, KServe health/metadata,
config status and reload, and /metrics. Errors come back as {"error": "<OVMS text>"}."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from ovmsclient.tfs_compat.protos.tensorflow_serving.apis import get_model_metadata_pb2

from . import kserve_service, logs, tfs_service
from .config import ConfigError
from .manager import Model, ModelManager, PartialConfigError
from .metrics import Registry
from .model import ErrorCode, State
from .status import Code, OvmsError

_MODEL_STATUS = re.compile(r"^/v1/models(?:/([^/:]+))?(?:/versions/(\d+))?(?:/(metadata))?$")
_KSERVE_READY = re.compile(r"^/v2/models/([^/]+)(?:/versions/([0-9]+))?/ready$")
_KSERVE_METADATA = re.compile(r"^/v2/models/([^/]+)(?:/versions/([0-9]+))?/?$")
_PREDICT = re.compile(r"^/v1/models/[^/:]+(?:/versions/\d+)?:(classify|regress|predict)$")
_KSERVE_INFER = re.compile(r"^/v2/models/[^/]+(?:/versions/[0-9]+)?/infer$")

Reply = tuple[HTTPStatus, str, str]
_JSON = "application/json"


def status_json(model: Model, version: int | None) -> dict[str, Any]:
    response = tfs_service.status_response(model, version)
    return {
        "model_version_status": [
            {
                "version": str(entry.version),
                "state": model_state_name(entry.state),
                "status": {
                    "error_code": error_code_name(entry.status.error_code),
                    "error_message": entry.status.error_message,
                },
            }
            for entry in response.model_version_status
        ]
    }


def model_state_name(value: int) -> str:
    return State(value).name


def error_code_name(value: int) -> str:
    return ErrorCode(value).name


def metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> dict[str, Any]:
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    signature_map.ParseFromString(response.metadata["signature_def"].value)
    packed = {
        "@type": tfs_service.SIGNATURE_DEF_MAP_URL,
        **json_format.MessageToDict(signature_map),
    }
    return {
        "modelSpec": json_format.MessageToDict(response.model_spec),
        "metadata": {"signature_def": packed},
    }


class RestApi:
    """Routes a request to a reply; no HTTP plumbing here."""

    def __init__(
        self,
        manager: ModelManager,
        registry: Registry,
        is_ready: Callable[[], bool],
        server_version: str,
        reload_config: Callable[[], bool],
    ) -> None:
        self.manager = manager
        self.registry = registry
        self.is_ready = is_ready
        self.server_version = server_version
        self.reload_config = reload_config

    def handle(self, method: str, path: str) -> Reply:
        try:
            if method == "GET":
                return self._get(path)
            if method == "POST":
                return self._post(path)
            raise OvmsError(Code.REST_UNSUPPORTED_METHOD)
        except OvmsError as error:
            logs.serving.debug("REST %s %s failed: %s", method, path, error.text)
            return error.code.http_code, _JSON, json.dumps({"error": error.text})

    @staticmethod
    def _ok(body: object = None, status: HTTPStatus = HTTPStatus.OK) -> Reply:
        text = "" if body is None else json.dumps(body, indent=1)
        return status, _JSON, text

    def _get(self, path: str) -> Reply:
        if match := _MODEL_STATUS.match(path):
            name, version_text, metadata = match.groups()
            version = int(version_text) if version_text else None
            if metadata:
                return self._ok(self._tfs_metadata(name or "", version or 0))
            model = self.manager.get_model(name or "")
            body = status_json(model, version)
            tfs_service.report_status(model, "REST", "GetModelStatus", tfs_service.API)
            return self._ok(body)
        if path == "/v1/config":
            return self._ok(self._all_statuses())
        if path == "/v2/health/live":
            return self._ok()
        if path == "/v2/health/ready":
            if not self.is_ready():
                raise OvmsError(Code.MODEL_NOT_LOADED)
            return self._ok()
        if path in ("/v2", "/v2/"):
            return self._ok({"name": kserve_service.SERVER_NAME, "version": self.server_version})
        if match := _KSERVE_READY.match(path):
            name, version_text = match.groups()
            if not kserve_service.model_ready(self.manager, name, version_text or "", "REST"):
                raise OvmsError(Code.MODEL_VERSION_NOT_LOADED_YET)
            return self._ok()
        if match := _KSERVE_METADATA.match(path):
            name, version_text = match.groups()
            response = kserve_service.metadata(self.manager, name, version_text or "", "REST")
            body = json_format.MessageToDict(response, preserving_proto_field_name=True)
            for key in ("inputs", "outputs"):
                for tensor in body.get(key, []):
                    tensor["shape"] = [int(d) for d in tensor.get("shape", [])]
            return self._ok(body)
        if path == "/metrics":
            if not self.registry.enabled:
                raise OvmsError(Code.REST_INVALID_URL)
            return HTTPStatus.OK, "text/plain; version=0.0.4", self.registry.render()
        if _PREDICT.match(path):
            raise OvmsError(Code.REST_UNSUPPORTED_METHOD)
        raise OvmsError(Code.REST_INVALID_URL)

    def _post(self, path: str) -> Reply:
        if path == "/v1/config/reload":
            try:
                reloaded = self.reload_config()
            except ConfigError as error:
                logs.modelmanager.error("%s", error)
                body = {"error": "Reloading config file failed. Check server logs for more info."}
                return HTTPStatus.PRECONDITION_FAILED, _JSON, json.dumps(body)
            except PartialConfigError:
                # MODEL_CONFIG_INVALID has no entry in OVMS's HTTP status map: 500.
                body = {"error": "Reloading config file failed. Check server logs for more info."}
                return HTTPStatus.INTERNAL_SERVER_ERROR, _JSON, json.dumps(body)
            status = HTTPStatus.CREATED if reloaded else HTTPStatus.OK
            return self._ok(self._all_statuses(), status)
        if _PREDICT.match(path) or _KSERVE_INFER.match(path):
            body = {"error": "REST inference is not implemented by the OVMS stand-in; use gRPC"}
            return HTTPStatus.NOT_IMPLEMENTED, _JSON, json.dumps(body)
        if _MODEL_STATUS.match(path):
            raise OvmsError(Code.REST_UNSUPPORTED_METHOD)
        raise OvmsError(Code.REST_INVALID_URL)

    def _tfs_metadata(self, name: str, version: int) -> dict[str, Any]:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = name
        request.model_spec.version.value = version
        return metadata_json(tfs_service.get_metadata(self.manager, request, "REST"))

    def _all_statuses(self) -> dict[str, Any]:
        return {model.name: status_json(model, None) for model in self.manager.models()}


def _handler_class(api: RestApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ovms-standin"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            status, content_type, body = api.handle(self.command, self.path.split("?", 1)[0])
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, format: str, *args: object) -> None:
            logs.serving.debug("REST %s", format % args)

    return Handler


class RestServer:
    def __init__(self, api: RestApi, address: str, port: int) -> None:
        self._httpd = ThreadingHTTPServer((address, port), _handler_class(api))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="rest", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
