#!/usr/bin/env bash
# Remakes the screenshots in docs/img: a smoke run of the per-patient study in a fresh ecgtune home, the
# MLflow UI on its store and `ecgtune report` on it, photographed by headless Chromium.
#   ECGTUNE_DATA_DIR=../shared/data bash docs/screenshots.sh      (needs: apt-get install chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
export ECGTUNE_HOME="$work/home" MLFLOW_TRACKING_URI="sqlite:///$work/home/mlflow.db"
export MLFLOW_REGISTRY_URI="$MLFLOW_TRACKING_URI"
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ui_url="http://127.0.0.1:$port"
# The link the search prints at its end: its trials, best first, with the columns that say which won.
.venv/bin/ecgtune search --space finetune_patients --patients 100,208 --smoke-test --mlflow-ui-url "$ui_url" \
  | tee "$work/search.log"
link=$(grep -o "$ui_url/#/experiments/[^ ]*" "$work/search.log" | tail -1)
.venv/bin/ecgtune report --space finetune_patients --smoke-test --out "$work/report" --mlflow-ui-url "$ui_url"
.venv/bin/mlflow ui --backend-store-uri "$MLFLOW_TRACKING_URI" --host 127.0.0.1 --port "$port" > "$work/ui.log" 2>&1 &
ui=$!
trap 'kill $ui 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 60); do curl -sf "$ui_url/health" > /dev/null && break; sleep 1; done

read -r exp_id model version <<< "$(.venv/bin/python - <<'PY'
from mlflow.tracking import MlflowClient
c = MlflowClient()
name = "finetune-cnn1d_residual-208-smoke-ad9a-abnormal_windows-mitdb-per_patient"
print(c.get_experiment_by_name("finetune_patients-smoke").experiment_id, name,
      c.get_model_version_by_alias(name, "champion").version)
PY
)"
shot() { .venv/bin/python docs/screenshot_page.py "$@"; }
close='button[aria-label="Close"]'                                    # the UI's assistant panel
shot "$link" docs/img/mlflow-experiment.png --click "$close" --width 1800 --height 1000
shot "$ui_url/#/models/$model/versions/$version" docs/img/mlflow-champion.png --click "$close" --width 1400 --height 700
shot "file://$work/report/index.html" docs/img/report.png --width 1400 --height 2400 --settle 2   # down to the first unit's search
ls -l docs/img
