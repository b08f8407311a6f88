"""The model manager: applies config.json, watches it and the version directories."""

from __future__ import annotations

import hashlib
import pathlib
import threading
import time

import openvino as ov

from . import logs
from .config import ConfigError, ModelConfig, ServerConfig, parse_document
from .devices import Record, check_plugin_config
from .metrics import Registry
from .model import ModelVersion, State
from .repository import RepositoryError, list_versions
from .status import Code, OvmsError

WAIT_FOR_LOADED_S = 10.0
_READ_RETRY_DELAY_S = 0.1


class PartialConfigError(Exception):
    """The config was applied only up to a model whose plugin_config the device does not take."""


class Model:
    """A model name and every version it has had; kept after removal, like OVMS does."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.config: ModelConfig | None = None
        self.versions: dict[int, ModelVersion] = {}
        self.lock = threading.RLock()

    def snapshot(self) -> dict[int, ModelVersion]:
        with self.lock:
            return dict(self.versions)

    def default_version(self) -> ModelVersion | None:
        """The highest AVAILABLE version, as OVMS picks the default."""
        available = [v for v in self.snapshot().values() if v.state == State.AVAILABLE]
        return max(available, key=lambda v: v.version) if available else None


class ModelManager:
    def __init__(self, config_path: str | None, registry: Registry) -> None:
        self.config_path = pathlib.Path(config_path) if config_path else None
        self.registry = registry
        self.core = ov.Core()
        self._models: dict[str, Model] = {}
        self._models_lock = threading.Lock()
        self._apply_lock = threading.Lock()
        self._md5: str | None = None
        self._last_load_failed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current: ServerConfig | None = None

    # ---- lookups used by the API frontends ----

    def find(self, name: str) -> Model | None:
        with self._models_lock:
            return self._models.get(name)

    def models(self) -> list[Model]:
        with self._models_lock:
            return [self._models[name] for name in sorted(self._models)]

    def get_model(self, name: str) -> Model:
        model = self.find(name)
        if model is None:
            raise OvmsError(Code.MODEL_NAME_MISSING)
        return model

    def get_version(self, name: str, version: int) -> ModelVersion:
        """The version a request asked for (0: default), or the OVMS error for it."""
        model = self.get_model(name)
        found = model.snapshot().get(version) if version else model.default_version()
        if found is None:
            raise OvmsError(Code.MODEL_VERSION_MISSING)
        return found

    # ---- config handling ----

    def check_plugin_config(self, config: ModelConfig) -> list[Record] | None:
        """OVMS's check of plugin_config keys against the target device's supported ones."""
        return check_plugin_config(self.core, config.target_device, config.plugin_config)

    def parse(self, text: str, config_dir: pathlib.Path) -> tuple[ServerConfig, list[Record]]:
        return parse_document(text, config_dir, self.check_plugin_config)

    def read_config(self) -> tuple[ServerConfig, list[Record]]:
        """Read and validate the config file; ConfigError says what is wrong."""
        assert self.config_path is not None
        text = self._read_text()
        try:
            return self.parse(text, self.config_path.parent)
        except ConfigError:
            # A writer that is not atomic can be caught mid-write; OVMS reads twice too.
            time.sleep(_READ_RETRY_DELAY_S)
            return self.parse(self._read_text(), self.config_path.parent)

    def _read_text(self) -> str:
        assert self.config_path is not None
        logs.modelmanager.debug("Loading configuration from %s", self.config_path)
        try:
            return self.config_path.read_text()
        except OSError as error:
            raise ConfigError(
                f"Configuration file is invalid {self.config_path}: {error.strerror}"
            ) from None

    def apply(self, config: ServerConfig, problems: list[Record]) -> None:
        """Serve what config lists; models it no longer lists (or, after a plugin_config
        failure, lists after the failing one) are unloaded, like OVMS's
        retireModelsRemovedFromConfigFile."""
        with self._apply_lock:
            for level, text in problems:
                logs.modelmanager.log(level, "%s", text)
            for section in config.ignored_sections:
                logs.modelmanager.warning(
                    "Config section %s is not supported by the OVMS stand-in; ignored", section
                )
            self._md5 = config.md5
            # OVMS keeps the failed status and loads the same file again on the next
            # POST /v1/config/reload, which fails again.
            self._last_load_failed = config.stopped_at is not None
            self.current = config
            wanted = {m.name: m for m in config.models}
            for model in self.models():
                if model.name not in wanted and model.config is not None:
                    self._retire_model(model)
            for model_config in config.models:
                with self._models_lock:
                    model = self._models.setdefault(model_config.name, Model(model_config.name))
                changed = model.config is None or model.config.raw != model_config.raw
                if changed:
                    logs.modelmanager.info("Reading model: %s configuration", model_config.name)
                model.config = model_config
                self._sync_versions(model, reload=changed)

    def _retire_model(self, model: Model) -> None:
        logs.modelmanager.debug("Retiring all versions of model: %s", model.name)
        model.config = None
        for number, version in sorted(model.snapshot().items()):
            if version.state < State.UNLOADING:
                logs.modelmanager.info("Will unload model: %s; version: %d ...", model.name, number)
                version.unload()

    def _sync_versions(self, model: Model, reload: bool) -> None:
        config = model.config
        assert config is not None
        try:
            on_disk = list_versions(config.base_path)
        except RepositoryError as error:
            if reload:
                logs.modelmanager.error("Model %s: %s", model.name, error)
            return
        if reload and not on_disk:
            logs.modelmanager.error(
                "Model %s: Not a single model version directory has valid numeric name in %s",
                model.name,
                config.base_path,
            )
        current = model.snapshot()
        failed = {v for v, inst in current.items() if inst.failed and not reload}
        wanted = config.policy.select(v for v in on_disk if v not in failed)
        for number in wanted:
            instance = current.get(number)
            if instance is None or instance.state == State.END:
                instance = ModelVersion(config, number, self.core, self.registry)
                with model.lock:
                    model.versions[number] = instance
                logs.modelmanager.info("Will add model: %s; version: %d ...", model.name, number)
                instance.load()
            elif reload:
                logs.modelmanager.info("Will reload model: %s; version: %d ...", model.name, number)
                instance.load(config)
        current = model.snapshot()
        failed = {v for v, inst in current.items() if inst.failed}
        keep = set(config.policy.select(v for v in on_disk if v not in failed))
        for number, instance in sorted(current.items()):
            gone = number not in on_disk
            if number in keep or instance.state >= State.UNLOADING:
                continue
            if instance.failed and not gone:
                continue
            logs.modelmanager.info("Will unload model: %s; version: %d ...", model.name, number)
            instance.unload()

    def _file_md5(self) -> str | None:
        assert self.config_path is not None
        try:
            return hashlib.md5(self.config_path.read_bytes()).hexdigest()
        except OSError:
            return None

    def config_changed(self) -> bool:
        md5 = self._file_md5()
        return md5 is not None and md5 != self._md5

    def _rescan(self) -> None:
        with self._apply_lock:
            for model in self.models():
                if model.config is not None:
                    self._sync_versions(model, reload=False)

    def poll_once(self) -> None:
        """One watcher pass: apply a changed config, or else rescan version directories."""
        if self.config_path is not None and self.config_changed():
            try:
                config, problems = self.read_config()
            except ConfigError as error:
                logs.modelmanager.error("%s", error)
                logs.modelmanager.error(
                    "Loading new configuration from %s failed; keeping the current one",
                    self.config_path,
                )
                # Remember the rejected content so it is reported once, not on every pass.
                self._md5 = self._file_md5()
                self._last_load_failed = True
            else:
                logs.modelmanager.info("Configuration file %s changed; reloading", self.config_path)
                self.apply(config, problems)
                return
        self._rescan()

    def reload_now(self) -> bool:
        """POST /v1/config/reload: apply a changed or so far rejected config now.

        Returns whether a config was applied; a config that is still broken raises ConfigError,
        one applied only up to a plugin_config failure raises PartialConfigError.
        """
        if self.config_path is not None and (self._last_load_failed or self.config_changed()):
            config, problems = self.read_config()
            self.apply(config, problems)
            if config.stopped_at is not None:
                raise PartialConfigError(config.stopped_at)
            return True
        self._rescan()
        return False

    def start_watcher(self, interval_s: int) -> None:
        if interval_s <= 0:
            logs.modelmanager.info("Model and config changes monitoring is disabled")
            return
        self._thread = threading.Thread(
            target=self._watch, args=(interval_s,), name="watcher", daemon=True
        )
        self._thread.start()

    def _watch(self, interval_s: int) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - the watcher has to survive anything to keep serving
                logs.modelmanager.exception("Config watcher pass failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
