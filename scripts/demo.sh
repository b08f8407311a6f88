#!/usr/bin/env bash
# The main job: deploy the single-system store on this machine with playbooks/site.yml and
# inventories/local, then print a few detections and the client's FPS.
set -euo pipefail
: "${CACHE_DIR:?run through make demo}"

results=/opt/ovms-client/ovms-client/results/detections.jsonl
ansible-playbook -i inventories/local playbooks/site.yml

echo "demo: waiting for the client's first metrics line in $results"
for _ in $(seq 1 60); do
  if [ -f "$results" ] && grep -q '"type": *"metrics"' "$results"; then
    break
  fi
  sleep 1
done
python3 - "$results" <<'PY'
import json
import sys

lines = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8") if line.strip()]
frames = [rec for rec in lines if rec.get("type") == "detections" and rec.get("detections")]
for rec in frames[-5:]:
    dets = ", ".join(f"{d['label']} {d['score']:.2f} at {d['box']}" for d in rec["detections"])
    print(f"demo: frame {rec['frame']} of {rec['stream']}: {dets}")
metrics = [rec for rec in lines if rec.get("type") == "metrics"]
if not frames or not metrics:
    sys.exit(f"demo: no detections or metrics in {sys.argv[1]} yet")
print(f"demo: client throughput {metrics[-1]['fps']} frames/s ({len(lines)} result lines so far)")
PY
