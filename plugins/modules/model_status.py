#!/usr/bin/python
# Copyright: (c) 2025, edge_retail.ovms contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: model_status
short_description: Wait until models served by OpenVINO Model Server are AVAILABLE
description:
  - Asks an OpenVINO Model Server (OVMS) over gRPC for the status of each listed model and
    waits until every one is AVAILABLE, or fails after O(timeout) seconds listing every model
    that is not, with the state and error text the server reported.
  - Runs on the host whose network path it checks, normally a client host, so a success also
    proves that this host reaches the server (through mutual TLS when the server is remote).
  - Speaks either the TensorFlow-Serving API (O(api=tfs), through C(ovmsclient)) or the KServe v2
    API (O(api=kserve), through C(tritonclient)).
  - Server readiness alone is not health (OVMS reports ready after its first load even when
    models failed), so each model is checked on its own.
  - Fails at once, without waiting, when an option is invalid or a TLS file cannot be read.
version_added: 0.1.0
author:
  - edge_retail platform team (!UNKNOWN)
requirements:
  - C(ovmsclient) for O(api=tfs), or C(tritonclient[grpc]) for O(api=kserve), importable by the
    Python interpreter Ansible uses on the host. The collection installs both in a virtual
    environment built from its wheelhouse; point C(ansible_python_interpreter) at that
    environment's C(python) (see the examples).
attributes:
  check_mode:
    description: Can run in check mode and return the same result as without it.
    support: full
    details:
      - The module only reads model status, so check mode does not change what it does.
  diff_mode:
    description: Will return details on what has changed.
    support: none
  idempotent:
    description:
      - Running it again with the same options against an unchanged server gives the same result.
    support: full
options:
  host:
    description:
      - Name or address of the OVMS server (or of the TLS proxy in front of it) as this host
        reaches it, for example V(127.0.0.1) on a single-system store.
    type: str
    required: true
  port:
    description:
      - gRPC port of the server (OVMS C(--port)), not its REST port.
    type: int
    default: 9000
  api:
    description:
      - Which gRPC API to ask.
      - V(kserve) is the KServe v2 API, which every current OVMS serves. It reports only ready or
        not ready, so a model whose version failed to load shows as V(NOT_READY) with the
        server's reply as error text. Without a pinned version it checks the default version,
        the highest one that is AVAILABLE.
      - V(tfs) is the TensorFlow-Serving API, removed from OVMS in 2026.3. It reports the state
        and load error of every version, and without a pinned version every version that the
        server has not retired must be AVAILABLE.
    type: str
    choices: [kserve, tfs]
    default: kserve
  models:
    description:
      - The models to check, as names from the OVMS configuration, or as dicts with the key
        C(name) (required, string) and the key C(version) (optional, positive integer) to check
        one version.
      - "A plain string V(person-detection) is the same as V({name: person-detection})."
    type: list
    elements: raw
    required: true
  timeout:
    description:
      - Seconds to wait for every model to be AVAILABLE before failing.
      - V(0) asks once and does not wait.
    type: float
    default: 60
  interval:
    description:
      - Seconds between two rounds of status requests while waiting.
    type: float
    default: 1
  ca_cert:
    description:
      - Path on the host to the PEM CA certificate that signed the server's certificate.
      - Setting it turns TLS on; without it the connection is plain text.
    type: path
  client_cert:
    description:
      - Path on the host to the PEM client certificate for mutual TLS.
    type: path
  client_key:
    description:
      - Path on the host to the PEM private key of O(client_cert). Its content is never logged
        or returned.
    type: path
  server_name:
    description:
      - Name to expect in the server's certificate (and to send as TLS SNI) when it differs from
        O(host), for example when O(host) is an IP address.
    type: str
notes:
  - The module never changes anything, so it always reports C(changed=false).
  - A fresh gRPC connection is opened for every round, so a server that starts while the module
    waits is found on the next round rather than after gRPC's reconnect back-off.
"""

EXAMPLES = r"""
- name: Wait until the person detector is AVAILABLE on this single-system store
  edge_retail.ovms.model_status:
    host: 127.0.0.1
    models:
      - person-detection

- name: Check a remote server through mutual TLS, using the collection's client venv
  edge_retail.ovms.model_status:
    host: 10.20.0.5
    port: 9443
    server_name: ovms.store-042.example
    ca_cert: /etc/ovms-client/tls/ca.crt
    client_cert: /etc/ovms-client/tls/client.crt
    client_key: /etc/ovms-client/tls/client.key
    models:
      - name: person-detection
        version: 2
      - face-detection
    timeout: 120
  vars:
    ansible_python_interpreter: /opt/edge-retail/check-venv/bin/python

- name: Ask an OVMS 2026.2 server over the TensorFlow-Serving API
  edge_retail.ovms.model_status:
    host: 127.0.0.1
    api: tfs
    models: [person-detection]
  register: status

- name: Show the versions the server reported
  ansible.builtin.debug:
    msg: "{{ status.models[0].versions }}"
"""

RETURN = r"""
api:
  description: The API that was asked.
  returned: always
  type: str
  sample: kserve
address:
  description: The C(host:port) that was asked.
  returned: always
  type: str
  sample: 127.0.0.1:9000
elapsed:
  description: Seconds spent waiting, rounded to hundredths.
  returned: always
  type: float
  sample: 2.31
models:
  description:
    - The last status of each requested model, in the order requested.
    - Empty when the server could not be reached.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Model name.
      type: str
      sample: person-detection
    requested_version:
      description: The version that was asked for, or V(null) for the model as a whole.
      type: int
      sample: null
    available:
      description: Whether the model (or the requested version) is AVAILABLE.
      type: bool
      sample: true
    error:
      description:
        - The server's answer when it gave no version status, for example when the model is not
          in its configuration (C(NOT_FOUND)). Empty otherwise.
      type: str
      sample: ""
    versions:
      description:
        - One entry per version the server reported.
        - With O(api=kserve) only the AVAILABLE versions, or one V(NOT_READY) entry.
      type: list
      elements: dict
      contains:
        version:
          description: Version number; V(null) when KServe did not name it.
          type: int
          sample: 1
        state:
          description:
            - V(START), V(LOADING), V(AVAILABLE), V(UNLOADING) or V(END) from OVMS over TFS.
            - V(AVAILABLE) or V(NOT_READY) over KServe.
          type: str
          sample: AVAILABLE
        error_code:
          description: Canonical gRPC/TensorFlow error code; V(0) when there is no error.
          type: int
          sample: 0
        error_message:
          description: The server's error text for this version.
          type: str
          sample: OK
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edge_retail.ovms.plugins.module_utils.ovms_grpc import (
    format_address,
    make_source_factory,
    missing_library,
)
from ansible_collections.edge_retail.ovms.plugins.module_utils.ovms_module import (
    ARGUMENT_SPEC,
    CONSTRAINTS,
    check_arguments,
    missing_library_message,
)
from ansible_collections.edge_retail.ovms.plugins.module_utils.ovms_status import wait_for_models


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **CONSTRAINTS)
    params = module.params
    api = params["api"]
    address = format_address(params["host"], params["port"])
    result = {"changed": False, "api": api, "address": address, "elapsed": 0.0, "models": []}

    problems, models, tls = check_arguments(params)
    if problems:
        module.fail_json(msg="; ".join(problems), **result)

    missing = missing_library(api)
    if missing:
        package, error = missing
        reason = f"to ask OVMS over the {api} API (api={api}); the collection's client venv has it"
        module.fail_json(msg=missing_library_message(package, error, reason), exception=error,
                         **result)

    outcome = wait_for_models(make_source_factory(api, address, tls), models,
                              params["timeout"], params["interval"])
    result.update(elapsed=round(outcome.elapsed, 2),
                  models=[status.as_dict() for status in outcome.statuses])
    if not outcome.ok:
        module.fail_json(msg=outcome.failure_message(address, api, params["timeout"]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
