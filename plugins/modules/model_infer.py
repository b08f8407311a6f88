#!/usr/bin/python
# Copyright: (c) 2025, edge_retail.ovms contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: model_infer
short_description: Run one real inference request per model on OpenVINO Model Server
description:
  - Sends one inference request to each listed model on an OpenVINO Model Server (OVMS) over
    gRPC, the way the store's inference clients do, and reports the outputs the server
    returned and how long the request took. Fails listing every model whose request failed,
    with the server's error text.
  - A health gate for after a store was changed. An AVAILABLE model (see
    M(edge_retail.ovms.model_status)) can still fail every request, for example after a
    configuration change of its shape, layout or plugin settings; this module proves that the
    model answers.
  - For each model it reads the model's metadata (inputs with name, shape and datatype) and
    sends one tensor per input of that shape, with every dynamic dimension (V(-1)) set to
    V(1), filled with a fixed value (V(128), mid-grey, for C(UINT8) inputs and V(0) for every
    other datatype). Models with string (C(BYTES)) or C(BF16) inputs are reported as failed.
  - Runs on the host whose network path it checks, normally a client host, so a success also
    proves that this host reaches the server (through mutual TLS when the server is remote).
  - Speaks either the KServe v2 API (O(api=kserve), through C(tritonclient)) or the
    TensorFlow-Serving API (O(api=tfs), through C(ovmsclient)).
  - Retries while the server cannot be reached, and while a model answers C(UNAVAILABLE) or
    C(DEADLINE_EXCEEDED) (for example a version that is still loading), until O(timeout).
    Any other error of a model (C(NOT_FOUND), C(INVALID_ARGUMENT), ...) fails at once. A model
    that answered is not asked again.
  - Fails at once, without waiting, when an option is invalid or a TLS file cannot be read.
version_added: 0.1.0
author:
  - edge_retail platform team (!UNKNOWN)
requirements:
  - C(tritonclient[grpc]) for O(api=kserve), or C(ovmsclient) for O(api=tfs), and C(numpy),
    importable by the Python interpreter Ansible uses on the host. The collection installs them
    in a virtual environment built from its wheelhouse; point C(ansible_python_interpreter) at
    that environment's C(python) (see the examples).
attributes:
  check_mode:
    description: Can run in check mode and return the same result as without it.
    support: full
    details:
      - The module only reads from the server; an inference request changes nothing on it, so
        check mode sends the same requests (and OVMS counts them in its metrics as usual).
  diff_mode:
    description: Will return details on what has changed.
    support: none
  idempotent:
    description:
      - Running it again with the same options against an unchanged server gives the same
        result, apart from the measured latencies.
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
      - Which gRPC API to send the requests over.
      - V(kserve) is the KServe v2 API (C(ModelMetadata), C(ModelInfer)), which every current
        OVMS serves.
      - V(tfs) is the TensorFlow-Serving API (C(GetModelMetadata), C(Predict)), removed from
        OVMS in 2026.3.
    type: str
    choices: [kserve, tfs]
    default: kserve
  models:
    description:
      - The models to send a request to, as names from the OVMS configuration, or as dicts
        with the key C(name) (required, string) and the key C(version) (optional, positive
        integer) to ask one version.
      - Without a version the server picks its default version, the highest one that is
        AVAILABLE.
      - "A plain string V(person-detection) is the same as V({name: person-detection})."
    type: list
    elements: raw
    required: true
  timeout:
    description:
      - Seconds for the whole check, retries included, before failing.
      - V(0) sends each request once and does not retry.
      - Each gRPC request gets the time that is left, but at least 2 and at most 30 seconds,
        so requests sent near the deadline can make the module end a few seconds after it.
    type: float
    default: 60
  interval:
    description:
      - Seconds between two rounds of requests while retrying.
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
  - The input is synthetic, so the outputs show that the model runs and what shapes it
    returns, not that its answers are right.
  - A fresh gRPC connection is opened for every round, so a server that starts while the module
    waits is found on the next round rather than after gRPC's reconnect back-off.
seealso:
  - module: edge_retail.ovms.model_status
"""

EXAMPLES = r"""
- name: Send one request to the person detector on this single-system store
  edge_retail.ovms.model_infer:
    host: 127.0.0.1
    models:
      - person-detection
  register: inference

- name: Show the shapes the detector returned
  ansible.builtin.debug:
    msg: "{{ inference.models[0].outputs | map(attribute='shape') | list }}"

- name: Health gate on a remote server through mutual TLS, using the collection's client venv
  edge_retail.ovms.model_infer:
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

- name: Take the client's own path to its server, as the ovms_client role publishes it
  edge_retail.ovms.model_infer:
    host: "{{ ovms_client_endpoint.host }}"
    port: "{{ ovms_client_endpoint.port }}"
    api: "{{ ovms_client_endpoint.api }}"
    ca_cert: "{{ ovms_client_endpoint.ca_cert | default(omit, true) }}"
    client_cert: "{{ ovms_client_endpoint.client_cert | default(omit, true) }}"
    client_key: "{{ ovms_client_endpoint.client_key | default(omit, true) }}"
    server_name: "{{ ovms_client_endpoint.server_name | default(omit, true) }}"
    models:
      - "{{ ovms_client_endpoint.model }}"
  vars:
    ansible_python_interpreter: /opt/edge-retail/check-venv/bin/python

- name: Ask an OVMS 2026.2 server over the TensorFlow-Serving API
  edge_retail.ovms.model_infer:
    host: 127.0.0.1
    api: tfs
    models: [person-detection]
"""

RETURN = r"""
api:
  description: The API that was used.
  returned: always
  type: str
  sample: kserve
address:
  description: The C(host:port) that was asked.
  returned: always
  type: str
  sample: 127.0.0.1:9000
elapsed:
  description: Seconds the whole check took, retries included, rounded to hundredths.
  returned: always
  type: float
  sample: 0.42
models:
  description:
    - One entry per requested model that the server was asked about, in the order requested.
    - Models it was never asked about, because it could not be reached, are left out; the list
      is empty when it could not be reached at all.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Model name.
      type: str
      sample: person-detection
    requested_version:
      description: The version that was asked for, or V(null) for the server's default version.
      type: int
      sample: null
    version:
      description:
        - The version that answered, as the server reported it in its inference answer (with
          O(api=tfs) also in the model's metadata).
        - V(null) when the server did not say, for example when a request over KServe failed.
      type: int
      sample: 1
    ok:
      description: Whether the inference request succeeded.
      type: bool
      sample: true
    error:
      description:
        - Empty on success; otherwise the step that failed (C(model metadata) or
          C(inference request)), the gRPC status code and the server's error text.
      type: str
      sample: ""
    inputs:
      description: The tensors that were sent (dynamic dimensions already set to 1).
      type: list
      elements: dict
      contains:
        name:
          description: Input name from the model's metadata.
          type: str
          sample: image_tensor
        shape:
          description: Shape that was sent.
          type: list
          elements: int
          sample: [1, 300, 300, 3]
        datatype:
          description: KServe datatype name (also with O(api=tfs)).
          type: str
          sample: UINT8
    outputs:
      description: The tensors the server returned; empty when the request failed.
      type: list
      elements: dict
      contains:
        name:
          description: Output name.
          type: str
          sample: detection_boxes
        shape:
          description: Shape of the returned tensor.
          type: list
          elements: int
          sample: [1, 100, 4]
        datatype:
          description: KServe datatype name (C(FP32), C(INT64), ...), also with O(api=tfs).
          type: str
          sample: FP32
    latency_ms:
      description:
        - Round trip of the inference request in milliseconds, as this host measured it;
          V(null) when the request failed.
      type: float
      sample: 9.87
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.edge_retail.ovms.plugins.module_utils.ovms_grpc import format_address
from ansible_collections.edge_retail.ovms.plugins.module_utils.ovms_infer import (
    make_infer_source_factory,
    missing_infer_library,
    run_inferences,
)
from ansible_collections.edge_retail.ovms.plugins.module_utils.ovms_module import (
    ARGUMENT_SPEC,
    CONSTRAINTS,
    check_arguments,
    missing_library_message,
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **CONSTRAINTS)
    params = module.params
    api = params["api"]
    address = format_address(params["host"], params["port"])
    result = {"changed": False, "api": api, "address": address, "elapsed": 0.0, "models": []}

    problems, models, tls = check_arguments(params)
    if problems:
        module.fail_json(msg="; ".join(problems), **result)

    missing = missing_infer_library(api)
    if missing:
        package, error = missing
        reason = (f"to send inference requests over the {api} API (api={api}); the "
                  "collection's client venv has it")
        module.fail_json(msg=missing_library_message(package, error, reason), exception=error,
                         **result)

    outcome = run_inferences(make_infer_source_factory(api, address, tls), models,
                             params["timeout"], params["interval"])
    result.update(elapsed=round(outcome.elapsed, 2),
                  models=[inference.as_dict() for inference in outcome.inferences])
    if not outcome.ok:
        module.fail_json(msg=outcome.failure_message(address, api, params["timeout"]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
