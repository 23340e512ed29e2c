#!/usr/bin/env bash
# Time to first token and time between tokens over the WebSocket, beside the service's in-process times, from one
# run: starts `serve` (in-process broker, the fixture model), then `load --websocket` with 1 and 4 clients.
# usage: load-tests/websocket-latency.sh [REQUESTS] [MODEL_DIR] [IMAGE]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100}
model=${2:-src/test/resources/fixtures/hf-transformers-5.17/blip2-opt-tiny/model}
image=${3:-src/test/resources/fixtures/hf-transformers-5.17/blip2-opt-tiny/image0.png}
params='{"max_new_tokens":30,"min_new_tokens":30}'
jar=target/blip2-stream.jar
[ -f "$jar" ] || mvn -B -q package -DskipTests
data=$(mktemp -d)
kport=${KPORT:-19092}; cport=${CPORT:-19093}; hport=${HPORT:-18080}
BLIP2_MODEL=$model BLIP2_DATA_DIR=$data BLIP2_KAFKA_EMBEDDED_PORT=$kport BLIP2_KAFKA_EMBEDDED_CONTROLLER_PORT=$cport \
  BLIP2_HTTP_PORT=$hport java -jar $jar serve >"$data/serve.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 120); do
  curl -sf "localhost:$hport/health/ready" >/dev/null 2>&1 && break
  sleep 1
done
echo "# WebSocket token latency, $(date -u +%FT%TZ)"
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1e6}' /proc/meminfo), $(java -version 2>&1 | head -1)."
echo "Model: \`$model\`, engine tensorflow, ${BLIP2_BATCHING:-continuous} batching; caption with \`$params\`; $n requests per run."
echo "Client side: from the generate frame sent to the first token frame, between token frames, to done."
echo "Server side (in-process, from the done frames): prefill, and decode time per token."
echo
echo '```'
echo "\$ ${BLIP2_BATCHING:+BLIP2_BATCHING=$BLIP2_BATCHING }load-tests/websocket-latency.sh $n"
for c in 1 4; do
  echo "-- load --websocket ws://localhost:$hport/v1/stream --requests $n --concurrency $c"
  java -jar $jar load --websocket "ws://localhost:$hport/v1/stream" --requests "$n" --concurrency $c --image "$image" \
    --params "$params" 2>/dev/null
done
echo '```'
