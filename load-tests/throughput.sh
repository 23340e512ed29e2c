#!/usr/bin/env bash
# The workers' raw throughput against end to end through Kafka, on the same requests (scenario files), in one
# run: `load --in-process` feeds one inference worker's batcher directly (no Kafka, no Vert.x); then `serve`
# starts (in-process broker, the visual-prompt cache off so that both do the same work) and `load` sends the
# same requests through Kafka. Prints a Markdown report:
#   load-tests/throughput.sh > load-tests/results/$(date +%F)-throughput.md
# usage: [LOAD_ARGS="--requests 256"] load-tests/throughput.sh [MODEL_DIR] [ENGINE] [SCENARIO...]
#   LOAD_ARGS: options after the scenario's, for both loads (a later option wins)
#   MODEL_DIR defaults to the bench's `small` checkpoint (random weights of ViT-B/16, Q-Former 12x768,
#   OPT-125m), made on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
jar=target/blip2-stream.jar
[ -f "$jar" ] || mvn -B -q package -DskipTests
model=${1:-data/bench/small-f32}
engine=${2:-tensorflow}
shift $(( $# > 2 ? 2 : $# ))
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(load-tests/scenarios/caption-closed-8.args load-tests/scenarios/caption-burst.args)
if [ ! -f "$model/config.json" ]; then
  java -jar $jar synthetic --size small --dtype f32 --out "$model" >&2
fi
quiet() { grep -v '^20[0-9][0-9]-\|To enable the following\|^\[' || true; }
echo "# Raw workers against Kafka end to end, $(date -u +%FT%TZ)"
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1e6}' /proc/meminfo), $(java -version 2>&1 | head -1)."
echo "Model: \`$model\`, engine $engine, continuous batching (batch size 8, wait 10 ms), visual-prompt cache off."
echo
echo '```'
echo "\$ ${LOAD_ARGS:+LOAD_ARGS=\"$LOAD_ARGS\" }load-tests/throughput.sh $model $engine ${scenarios[*]}"
declare -A raw
for s in "${scenarios[@]}"; do
  echo "-- load @$s --in-process"
  out=$(BLIP2_ENGINE=$engine java -jar $jar load @"$s" ${LOAD_ARGS:-} --in-process --model "$model" --json 2>/dev/null | tail -1)
  echo "$out"
  raw[$s]=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["throughput"])')
done
data=$(mktemp -d)
kport=${KPORT:-19092}; cport=${CPORT:-19093}; hport=${HPORT:-18080}
BLIP2_MODEL=$model BLIP2_ENGINE=$engine BLIP2_CACHE_ENABLED=false BLIP2_DATA_DIR=$data BLIP2_KAFKA_EMBEDDED_PORT=$kport \
  BLIP2_KAFKA_EMBEDDED_CONTROLLER_PORT=$cport BLIP2_HTTP_PORT=$hport java -jar $jar serve >"$data/serve.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 180); do
  curl -sf "localhost:$hport/health/ready" >/dev/null 2>&1 && break
  sleep 1
done
for s in "${scenarios[@]}"; do
  echo "-- load @$s   (through Kafka)"
  out=$(java -jar $jar load @"$s" ${LOAD_ARGS:-} --bootstrap-servers localhost:$kport --json 2>/dev/null | tail -1)
  echo "$out"
  kafka=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["throughput"])')
  python3 -c "print('   Kafka / raw: %.1f%%  (%.3f / %.3f requests/s)' % (100 * $kafka / ${raw[$s]}, $kafka, ${raw[$s]}))"
done
echo '```'
