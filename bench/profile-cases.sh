#!/usr/bin/env bash
# Where the broker's CPU goes in the produce cases of the matrix. For each
# case: a fresh broker (a child process, data in a temporary directory), the
# case's load from `floe bench produce`, a CPU profile of the broker taken
# from the middle of the run and split by tools/profsplit, and the store's
# commit metrics over the same window. Prints one markdown table.
#
#   make build && bench/profile-cases.sh [case ...]
#
# Cases: rest-1x200 rest-100x200 rest-100x1k grpc-stream-100x200
# grpc-stream-body-100x200 (default: all five). The broker listens on
# 127.0.0.1, ports FLOE_PROFILE_PORT (default 19249) to FLOE_PROFILE_PORT+5;
# FLOE_PROFILE_SECONDS (default 8) is the length of each profile. Profiles
# are kept in FLOE_PROFILE_DIR when it is set.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/bin/floe
[[ -x $bin ]] || { echo "profile-cases: no $bin: run make build first" >&2; exit 1; }
port=${FLOE_PROFILE_PORT:-19249}
seconds=${FLOE_PROFILE_SECONDS:-8}
cases=("$@")
((${#cases[@]})) || cases=(rest-1x200 rest-100x200 rest-100x1k grpc-stream-100x200 grpc-stream-body-100x200)

work=$(mktemp -d)
pid=
cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
(cd tools && go build -o "$work/profsplit" ./profsplit)

load_args() {
	case $1 in
	rest-1x200) echo --connections 16 --events-per-request 1 --event-size 200 ;;
	rest-100x200) echo --connections 16 --events-per-request 100 --event-size 200 ;;
	rest-100x1k) echo --connections 8 --events-per-request 100 --event-size 1024 ;;
	grpc-stream-100x200) echo --api grpc --grpc-stream --connections 16 --inflight 16 --events-per-request 100 --event-size 200 ;;
	grpc-stream-body-100x200) echo --api grpc --grpc-stream --grpc-body --connections 16 --inflight 16 --events-per-request 100 --event-size 200 ;;
	*) return 1 ;;
	esac
}

# metric NAME prints the value of an unlabelled series of the broker.
metric() { awk -v n="$1" '$1 == n { printf "%.9f\n", $2 }' "$2"; }

declare -A cell seen
parts=()
for c in "${cases[@]}"; do
	args=$(load_args "$c") || { echo "profile-cases: unknown case $c" >&2; exit 2; }
	data=$work/data-$c
	"$bin" --grpc-addr 127.0.0.1:$port --discovery-addr 127.0.0.1:$((port + 1)) \
		--producer-addr 127.0.0.1:$((port + 2)) --consumer-addr 127.0.0.1:$((port + 3)) \
		--metrics-addr 127.0.0.1:$((port + 4)) --pprof-addr 127.0.0.1:$((port + 5)) \
		--data-dir "$data" --log-level warn 2>"$work/broker.log" &
	pid=$!
	for _ in $(seq 50); do
		curl -sf -o /dev/null "http://127.0.0.1:$((port + 4))/metrics" && break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null || { cat "$work/broker.log" >&2; exit 1; }

	# shellcheck disable=SC2086 # args is a list of flags
	"$bin" bench produce $args --grpc 127.0.0.1:$port --producer 127.0.0.1:$((port + 2)) \
		--topic "profile-$c" --duration $((seconds + 6))s --progress 0 --json >"$work/run.json" 2>/dev/null &
	load=$!
	sleep 3
	curl -sf "http://127.0.0.1:$((port + 4))/metrics" >"$work/m0"
	curl -sf -o "$work/$c.cpu.pprof" "http://127.0.0.1:$((port + 5))/debug/pprof/profile?seconds=$seconds"
	curl -sf "http://127.0.0.1:$((port + 4))/metrics" >"$work/m1"
	wait "$load" || true
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	pid=
	rm -rf "$data"
	[[ -n ${FLOE_PROFILE_DIR:-} ]] && cp "$work/$c.cpu.pprof" "$FLOE_PROFILE_DIR/"

	delta() { awk -v a="$(metric "$1" "$work/m0")" -v b="$(metric "$1" "$work/m1")" 'BEGIN { print b - a }'; }
	appends=$(delta floe_store_appends_total)
	commits=$(delta floe_store_commit_duration_seconds_count)
	fsyncs=$(delta floe_store_wal_fsync_duration_seconds_count)
	cell["events/s in this run,$c"]=$(grep -o '"events_per_sec": *[0-9.]*' "$work/run.json" | head -1 | awk -F: '{ n = sprintf("%d", $2); t = ""
		while (length(n) > 3) { t = "," substr(n, length(n) - 2) t; n = substr(n, 1, length(n) - 3) }
		print n t }')
	cell["appends per commit,$c"]=$(awk -v a="$appends" -v b="$commits" 'BEGIN { printf "%.1f", a / (b > 0 ? b : 1) }')
	cell["WAL fdatasync / commit / append, mean,$c"]=$(awk \
		-v fs="$(delta floe_store_wal_fsync_duration_seconds_sum)" -v fn="$fsyncs" \
		-v cs="$(delta floe_store_commit_duration_seconds_sum)" -v cn="$commits" \
		-v as="$(delta floe_store_append_duration_seconds_sum)" -v an="$appends" \
		'function ms(s, n) { return n > 0 ? 1000 * s / n : 0 }
		BEGIN { printf "%.2f / %.2f / %.2f ms", ms(fs, fn), ms(cs, cn), ms(as, an) }')

	"$work/profsplit" "$work/$c.cpu.pprof" >"$work/split"
	cell["broker CPU (cores),$c"]=$(sed -n 's/.*(\([0-9.]*\) cores).*/\1/p' "$work/split")
	while IFS='|' read -r name pct; do
		[[ -n ${seen[$name]:-} ]] || { seen[$name]=1; parts+=("$name"); }
		cell["$name,$c"]=$pct
	done < <(awk 'NR > 1 { pct = $NF; $NF = ""; $(NF - 1) = ""; $(NF - 2) = ""; sub(/ +$/, ""); sub(/^ +/, ""); print $0 "|" pct }' "$work/split")
done

rows=("events/s in this run" "broker CPU (cores)" "${parts[@]}" "appends per commit" "WAL fdatasync / commit / append, mean")
printf '| part of the broker'"'"'s CPU |'
printf ' %s |' "${cases[@]}"
printf '\n|---|'
printf -- '--:|%.0s' "${cases[@]}"
printf '\n'
for r in "${rows[@]}"; do
	printf '| %s |' "$r"
	for c in "${cases[@]}"; do printf ' %s |' "${cell[$r,$c]:-—}"; done
	printf '\n'
done
