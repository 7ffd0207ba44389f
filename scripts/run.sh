#!/usr/bin/env bash
# `make run`: the exporter and the receiver on their embedded defaults, in the foreground.
# The exporter watches this machine (CPU, memory, filesystems, load, listening ports, and
# Docker when its socket is there); the receiver runs in dry-run mode with a generated token.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
EXPORTER_ADDR=${EXPORTER_ADDR:-127.0.0.1:9877}
RECEIVER_ADDR=${RECEIVER_ADDR:-127.0.0.1:9878}
STATE_DIR=${STATE_DIR:-.run}
mkdir -p "$STATE_DIR"

"$BIN/stackmedic-exporter" --web.listen-address="$EXPORTER_ADDR" &
exporter=$!
STACKMEDIC_RECEIVER_STATE_DIR="$STATE_DIR" "$BIN/stackmedic-receiver" --web.listen-address="$RECEIVER_ADDR" &
receiver=$!
trap 'kill "$exporter" "$receiver" 2>/dev/null || true; wait' INT TERM EXIT

cat <<TXT

stackmedic is running (Ctrl-C stops both):
  exporter metrics   http://$EXPORTER_ADDR/metrics      (landing page: http://$EXPORTER_ADDR/)
  receiver           http://$RECEIVER_ADDR/             (recent actions and breakers)
  receiver API       http://$RECEIVER_ADDR/api/v1/actions (reads open; writes need the token the receiver prints)
  receiver metrics   http://$RECEIVER_ADDR/metrics

TXT
wait -n "$exporter" "$receiver"
