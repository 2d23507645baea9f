#!/usr/bin/env bash
# Real Go peers for the tests and the benchmark, built from the Go module proxy at pinned versions
# into build/peers/ (git-ignored).  Nothing fetched here is committed; the product stays Python.
#
#   tools/peers.sh build [PEER...]   build the named peers (default: all); skips what is built
#   tools/peers.sh path PEER         print the peer's executable, building it first if missing
#
# Peers:
#   entrypoint   Tekton Pipelines' own step entrypoint (github.com/tektoncd/pipeline/cmd/entrypoint):
#                the baseline `make bench` pairs ours with.
set -euo pipefail

# The newest release of github.com/tektoncd/pipeline that the module proxy served on 2026-12-03
# (v1.16.0 and v1.15.2 were refused).  Its go.mod has no replace lines and asks for go 1.26.4.
TEKTON_VERSION=v1.15.1

REPO=$(cd "$(dirname "$0")/.." && pwd)
PEERS="$REPO/build/peers"
BIN="$PEERS/bin"

die() { echo "peers.sh: $*" >&2; exit 1; }

go_env() {
    command -v go >/dev/null 2>&1 || die "go not found: install Go 1.26 or newer (the polyglot machine has it)"
    # Module cache and build cache inside the repository's ignored cache: nothing lands in $HOME,
    # and a second build needs no network.
    export GOPATH="$PEERS/go" GOMODCACHE="$PEERS/go/mod" GOCACHE="$PEERS/go/cache"
    export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" GOTOOLCHAIN=local
}

build_entrypoint() {
    local out="$BIN/tekton-entrypoint-$TEKTON_VERSION"
    if [[ ! -x "$out" ]]; then
        go_env
        mkdir -p "$BIN"
        local start=$SECONDS
        echo "peers.sh: building Tekton's entrypoint $TEKTON_VERSION from the Go module proxy" >&2
        # `go install pkg@version` asks the proxy for the module's version list, which it
        # refuses; a throwaway module that requires the pinned release builds the same package.
        local mod="$PEERS/src/tekton-$TEKTON_VERSION"
        mkdir -p "$mod"
        printf 'module peers.local/tekton\n\ngo 1.26\n\nrequire github.com/tektoncd/pipeline %s\n' \
            "$TEKTON_VERSION" > "$mod/go.mod"
        printf 'package tools\n\nimport _ "github.com/tektoncd/pipeline/cmd/entrypoint"\n' > "$mod/tools.go"
        (cd "$mod" && go mod tidy -e >/dev/null 2>&1 || true
         cd "$mod" && go build -mod=mod -o "$out.tmp" github.com/tektoncd/pipeline/cmd/entrypoint) \
            || die "building github.com/tektoncd/pipeline/cmd/entrypoint@$TEKTON_VERSION failed (see above)"
        mv "$out.tmp" "$out"
        echo "peers.sh: built $out in $((SECONDS - start)) s" >&2
    fi
    ln -sfn "$(basename "$out")" "$BIN/tekton-entrypoint"
}

peer_path() {
    case "$1" in
        entrypoint) build_entrypoint >&2; echo "$BIN/tekton-entrypoint-$TEKTON_VERSION" ;;
        *) die "unknown peer '$1' (known: entrypoint)" ;;
    esac
}

case "${1:-}" in
    build)
        shift
        for peer in "${@:-entrypoint}"; do
            case "$peer" in
                entrypoint) build_entrypoint ;;
                *) die "unknown peer '$peer' (known: entrypoint)" ;;
            esac
        done
        ;;
    path)
        [[ $# -eq 2 ]] || die "usage: tools/peers.sh path PEER"
        peer_path "$2"
        ;;
    *) die "usage: tools/peers.sh build [PEER...] | path PEER" ;;
esac
