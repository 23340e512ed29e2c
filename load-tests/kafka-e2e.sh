#!/usr/bin/env bash
# End-to-end through Kafka: starts `serve` (in-process broker, the fixture model), loads it with `load` in three
# shapes (one at a time, 8 outstanding, all at once), and times the command line on the same request in the same
# run. Prints a Markdown report; `load-tests/kafka-e2e.sh > load-tests/results/$(date +%F)-kafka-e2e.md`.
# usage: load-tests/kafka-e2e.sh [REQUESTS] [MODEL_DIR] [IMAGE]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
model=${2:-src/test/resources/fixtures/hf-transformers-5.17/blip2-opt-tiny/model}
image=${3:-src/test/resources/fixtures/hf-transformers-5.17/blip2-opt-tiny/image0.png}
params='{"max_new_tokens":12}'
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
echo "# Kafka end to end, $(date -u +%FT%TZ)"
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1e6}' /proc/meminfo), $(java -version 2>&1 | head -1)."
echo "Model: \`$model\`, engine tensorflow, ${BLIP2_BATCHING:-continuous} batching, batch size 8, batch wait 10 ms; caption with \`$params\`; $n requests per run."
echo
echo '```'
echo "\$ ${BLIP2_BATCHING:+BLIP2_BATCHING=$BLIP2_BATCHING }load-tests/kafka-e2e.sh $n"
for c in 1 8 0; do
  echo "-- load --requests $n --concurrency $c   (0: all sent at once)"
  java -jar $jar load --bootstrap-servers localhost:$kport --requests "$n" --concurrency $c --image "$image" --params "$params" 2>/dev/null
done
echo "-- the command line on the same request, 5 runs (each a fresh JVM), medians"
load-tests/cli-timing.sh 5 caption --model "$model" --image "$image" --max-new-tokens 12 2>/dev/null
echo '```'
