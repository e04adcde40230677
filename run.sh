#!/usr/bin/env bash
# One entry point for people and CI: sets up ./.venv on first use (and again whenever
# pyproject.toml changes), then runs the requested job.
#   ./run.sh serve [pushsim serve flags]   fake APNs + fake FCM + default fleet + control API
#   ./run.sh test  [pytest args]           the whole test suite
#   ./run.sh bench full|quick|apns|fcm [args]  benchmarks vs nghttpd (installs h2load/nghttpd);
#                                          `bench quick` is the < 1 min before/after check (benchmarks/README.md)
#   ./run.sh conformance [--engine fast|h2] h2spec on every HTTP/2 port, both engines (docs/edge.md)
#   ./run.sh pushsim ...                   any other pushsim command
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
venv="$here/.venv"
py="${PYTHON:-python3}"

ensure_venv() {
    local stamp="$venv/.pushsim-stamp" want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    if [[ ! -x "$venv/bin/python" ]]; then
        "$py" -m venv "$venv"
    fi
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
        "$venv/bin/python" -m pip install -q --upgrade pip
        "$venv/bin/python" -m pip install -q -e ".[test]"
        echo "$want" > "$stamp"
    fi
}

need_debs() {  # install Debian packages only when a command is missing (CI runs as root)
    local missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    ((${#missing[@]})) || return 0
    local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
}

need_node_clients() {  # the real Node.js APNs clients the integration tests drive (tests/node)
    [[ -d tests/node/node_modules ]] && return 0
    npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
}

cmd="${1:-}"; shift || true
case "$cmd" in
    serve)  ensure_venv; exec "$venv/bin/pushsim" serve "$@" ;;
    test)   need_debs curl:curl h2load:nghttp2-client node:nodejs npm:npm promtool:prometheus chromium:chromium haproxy:haproxy; need_node_clients; ensure_venv
            exec "$venv/bin/python" -m pytest "$@" ;;
    bench)  need_debs h2load:nghttp2-client nghttpd:nghttp2-server haproxy:haproxy; ensure_venv
            exec "$venv/bin/python" -m benchmarks "${@:-quick}" ;;
    conformance) ensure_venv; exec "$venv/bin/python" -m tests.conformance "$@" ;;
    pushsim) ensure_venv; exec "$venv/bin/pushsim" "$@" ;;
    *) echo "usage: ./run.sh serve|test|bench|conformance|pushsim [args]" >&2; exit 2 ;;
esac
