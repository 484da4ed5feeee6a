#!/usr/bin/env bash
# Fresh-clone smoke test, run by .ci/run after the test suite: what a newcomer does first.
#
# Clones this repository's HEAD into a temporary folder, runs the first command line of
# README.md exactly as written there (install, then start a local cluster) in the background,
# in a process group of its own, and checks that:
# - npm install did not warn that a dependency refuses this Node.js version (EBADENGINE);
# - progress was printed before the nodes were up (a newcomer sees something at once);
# - the cluster answers: every engine of the new cluster.json is ready, and
#   `npx --no-install cohort cluster info` lists every node active, without rebuilding dist/;
# - SIGINT to the group (what Ctrl-C in a terminal sends) stops it, and every node exits.
# Whatever happens, the group is killed and the folder removed at the end. Timings are
# printed; none is a pass/fail bar, except generous deadlines so that a hang fails.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/cohort-fresh-clone-XXXXXX")"
out="$work/readme-line.log"
group=""

cleanup() {
  local status=$?
  if [ -n "$group" ]; then kill -KILL -- "-$group" 2>/dev/null || true; fi
  # Nodes are in the group too; this catches any that a failure left behind regardless.
  if [ -f "$work/cohort/.cohort/cluster.json" ]; then
    for pid in $(node -e 'for (const n of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).nodes) console.log(n.pid)' "$work/cohort/.cohort/cluster.json" 2>/dev/null); do
      kill -KILL "$pid" 2>/dev/null || true
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f s", b - a }'; }
fail() {
  echo "fresh-clone-smoke: FAILED: $*" >&2
  if [ -f "$out" ]; then
    echo "--- output of the README line (last 60 lines) ---" >&2
    tail -n 60 "$out" >&2
  fi
  exit 1
}

t0=$(now)
git clone --quiet "$repo" "$work/cohort"
cd "$work/cohort"
t_cloned=$(now)

# The first line of the README's first sh block, without its comment: the line a newcomer pastes.
line="$(awk '/^```sh$/ { inside = 1; next } inside { print; exit }' README.md | sed 's/[[:space:]]*#.*$//')"
[ -n "$line" ] || fail "no command line found at the top of README.md"
echo "fresh-clone-smoke: cloned in $(since "$t0" "$t_cloned"); running the README's first line: $line"

# setsid: a session and process group of its own, as a terminal would give the line.
setsid bash -c "$line" >"$out" 2>&1 </dev/null &
leader=$!
group="$(ps -o pgid= -p "$leader" | tr -d ' ')"
[ "$group" = "$leader" ] || fail "the README line did not get a process group of its own (pgid $group, pid $leader)"

t_launched=$(now)
t_command="" t_progress="" t_up="" progress_while_starting=""
deadline=$(($(date +%s) + 900)) # npm install compiles better-sqlite3: minutes, on a slow machine
while [ -z "$t_up" ]; do
  kill -0 "$leader" 2>/dev/null || fail "the README line ended before the cluster was up"
  [ "$(date +%s)" -lt "$deadline" ] || fail "the cluster was not up within 900 s"
  # Where npm install ends and the README's command starts: npm run's echo of the script, or
  # (npx) npm install's closing "added N packages" / "up to date" line.
  if [ -z "$t_command" ] && grep -Eq '^> .*cli/cohort.js up|^(added [0-9]+ packages|up to date)' "$out"; then t_command=$(now); fi
  if [ -z "$t_progress" ] && grep -q '^cohort up: starting ' "$out"; then
    t_progress=$(now)
    grep -q 'is running (' "$out" || progress_while_starting=yes
  fi
  if grep -q 'is running (' "$out"; then t_up=$(now); fi
  sleep 0.1
done
# package.json promises Node.js versions every dependency accepts.
if grep -q 'EBADENGINE' "$out"; then fail "npm install warned EBADENGINE"; fi
[ -n "$t_progress" ] || fail "no progress line (\"cohort up: starting ...\") was printed"
[ -n "$progress_while_starting" ] || fail "progress appeared only together with the summary, not while the nodes were starting"
# The lines in order: starting, then one "ready" per node, then the summary.
awk '/^cohort up: starting / { s = NR } /^cohort up: .* ready \(pid / { if (!s) bad = 1; r = NR } /is running \(/ { if (!r || r > NR) bad = 1 } END { exit bad }' "$out" ||
  fail "progress lines out of order"

cluster_json=.cohort/cluster.json
[ -f "$cluster_json" ] || fail "no $cluster_json after the summary"
# Every engine of the new cluster.json is ready.
node --input-type=module -e '
  import { readFileSync } from "node:fs";
  const file = JSON.parse(readFileSync(process.argv[1], "utf8"));
  const engines = file.nodes.filter((n) => n.role === "engine");
  if (engines.length === 0) throw new Error("no engine in cluster.json");
  for (const n of engines) {
    const res = await fetch(`${n.runtime}/health/ready`, { signal: AbortSignal.timeout(10000) });
    if (res.status !== 200) throw new Error(`${n.id}: /health/ready answered ${res.status}: ${await res.text()}`);
  }
  console.log(`fresh-clone-smoke: ${engines.map((n) => n.id).join(", ")} ready`);
' "$cluster_json" || fail "an engine of $cluster_json is not ready"

# cohort cluster info through npx, as the README and the summary say. The first npx in a clone
# links the package into npm's cache and runs its prepare step, which must not rebuild dist/.
bin_before="$(stat -c %Y dist/src/cli/cohort.js)"
t_info=$(now)
info="$(npx --no-install cohort cluster info -c .cohort/console.ini)" || fail "cohort cluster info failed: $info"
t_info_done=$(now)
[ "$(stat -c %Y dist/src/cli/cohort.js)" = "$bin_before" ] || fail "npx rebuilt dist/ (prepare did not see the build as current)"
nodes="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).nodes.map((n) => n.id).join(" "))' "$cluster_json")"
for id in $nodes; do
  echo "$info" | grep -Eq "^$id( \*)? +[a-z]+ +active " || fail "cohort cluster info does not list $id as active:
$info"
done
echo "fresh-clone-smoke: cohort cluster info lists $nodes as active"

# Ctrl-C: SIGINT to the whole group, then every process must end by itself.
pids="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).nodes.map((n) => n.pid).join(" "))' "$cluster_json")"
t_sigint=$(now)
kill -INT -- "-$group"
deadline=$(($(date +%s) + 120))
while kill -0 "$leader" 2>/dev/null; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "the README line still running 120 s after SIGINT"
  sleep 0.1
done
for pid in $pids; do
  while kill -0 "$pid" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "node pid $pid still running 120 s after SIGINT"
    sleep 0.1
  done
done
t_stopped=$(now)
if grep -q 'killing it (SIGKILL)' "$out"; then fail "a node had to be killed instead of stopping"; fi
group=""

echo "fresh-clone-smoke: passed"
echo "  clone                                    $(since "$t0" "$t_cloned")"
if [ -n "$t_command" ]; then
  echo "  README line to 'cohort up' starting      $(since "$t_launched" "$t_command") (npm install)"
  echo "  'cohort up' starting to first progress   $(since "$t_command" "$t_progress")"
else
  echo "  README line to first progress            $(since "$t_launched" "$t_progress")"
fi
echo "  first progress to cluster up             $(since "$t_progress" "$t_up")"
echo "  npx --no-install cohort cluster info     $(since "$t_info" "$t_info_done") (first npx in the clone)"
echo "  SIGINT to every node exited              $(since "$t_sigint" "$t_stopped")"
echo "--- what the README line printed, after npm install ---"
sed -n -E '/^> .*cli\/cohort.js up|^(added [0-9]+ packages|up to date)/,$p' "$out"
