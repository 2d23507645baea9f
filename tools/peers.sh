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
#   termparse    Tekton's own termination-message parser (pkg/termination.ParseMessage) behind a
#                small generated main: the differential peer of our parser (tests/unit).
#   kube-apiserver, etcd
#                Kubernetes' API server (k8s.io/kubernetes/cmd/kube-apiserver) and its store, for the
#                end-to-end tests (issue 14).  A cold build takes ~15-25 min on 2 cores.
set -euo pipefail

# The newest release of github.com/tektoncd/pipeline that the module proxy served on 2026-12-03
# (v1.16.0 and v1.15.2 were refused).  Its go.mod has no replace lines and asks for go 1.26.4.
TEKTON_VERSION=v1.15.1
# A current Kubernetes release the proxy serves; its staging modules are v0.<minor>.<patch>.
KUBE_VERSION=v1.36.3
# The etcd release line Kubernetes 1.36 is tested with (v3.6); built from its own modules.
ETCD_VERSION=v3.6.16

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

# A throwaway module under build/peers/src/NAME that requires MODULE@VERSION and has MAIN as its
# main package; `go build` then resolves the rest from the proxy.
throwaway_module() {
    local name=$1 require=$2 main=$3 mod="$PEERS/src/$1"
    mkdir -p "$mod"
    printf 'module peers.local/%s\n\ngo 1.26\n\nrequire %s\n' "$name" "$require" > "$mod/go.mod"
    printf '%s\n' "$main" > "$mod/main.go"
    echo "$mod"
}

build_termparse() {
    local out="$BIN/tekton-termparse-$TEKTON_VERSION"
    [[ -x "$out" ]] && return 0
    go_env
    mkdir -p "$BIN"
    # Reads a message on stdin, prints Tekton's parse as JSON, or "error: ..." and exit 1.
    local mod
    mod=$(throwaway_module "termparse-$TEKTON_VERSION" "github.com/tektoncd/pipeline $TEKTON_VERSION" '
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/tektoncd/pipeline/pkg/termination"
	"go.uber.org/zap"
)

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	rs, err := termination.ParseMessage(zap.NewNop().Sugar(), string(in))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(rs)
	fmt.Println(string(out))
}')
    (cd "$mod" && go mod tidy -e >/dev/null 2>&1 || true
     cd "$mod" && go build -mod=mod -o "$out.tmp" .) || die "building Tekton's termination parser failed (see above)"
    mv "$out.tmp" "$out"
}

build_etcd() {
    local out="$BIN/etcd-$ETCD_VERSION"
    [[ -x "$out" ]] && return 0
    go_env
    mkdir -p "$BIN"
    local start=$SECONDS mod
    echo "peers.sh: building etcd $ETCD_VERSION from the Go module proxy" >&2
    mod=$(throwaway_module "etcd-$ETCD_VERSION" "go.etcd.io/etcd/server/v3 $ETCD_VERSION" '
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }')
    (cd "$mod" && go mod tidy -e >/dev/null 2>&1 || true
     cd "$mod" && go build -mod=mod -o "$out.tmp" .) || die "building etcd $ETCD_VERSION failed (see above)"
    mv "$out.tmp" "$out"
    echo "peers.sh: built $out in $((SECONDS - start)) s" >&2
}

build_kube_apiserver() {
    local out="$BIN/kube-apiserver-$KUBE_VERSION"
    [[ -x "$out" ]] && return 0
    go_env
    mkdir -p "$BIN"
    local start=$SECONDS mod="$PEERS/src/kube-$KUBE_VERSION"
    echo "peers.sh: building kube-apiserver $KUBE_VERSION from the Go module proxy" >&2
    mkdir -p "$mod"
    # k8s.io/kubernetes points its staging modules at ./staging; a wrapper pins each to its release.
    local gomod staging
    gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
    [[ -f "$gomod" ]] || die "the module proxy did not serve k8s.io/kubernetes@$KUBE_VERSION"
    staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$gomod")
    {
        printf 'module peers.local/kube\n\ngo 1.26\n\nrequire k8s.io/kubernetes %s\n\n' "$KUBE_VERSION"
        for m in $staging; do printf 'replace %s => %s v0.%s\n' "$m" "$m" "${KUBE_VERSION#v1.}"; done
    } > "$mod/go.mod"
    printf 'package tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' > "$mod/tools.go"
    (cd "$mod" && go mod tidy -e >/dev/null 2>&1 || true
     cd "$mod" && go build -mod=mod -o "$out.tmp" k8s.io/kubernetes/cmd/kube-apiserver) \
        || die "building kube-apiserver $KUBE_VERSION failed (see above)"
    mv "$out.tmp" "$out"
    echo "peers.sh: built $out in $((SECONDS - start)) s" >&2
}

build_peer() {
    case "$1" in
        entrypoint) build_entrypoint ;;
        termparse) build_termparse ;;
        etcd) build_etcd ;;
        kube-apiserver) build_kube_apiserver ;;
        *) die "unknown peer '$1' (known: entrypoint termparse etcd kube-apiserver)" ;;
    esac
}

peer_path() {
    case "$1" in
        entrypoint) build_entrypoint >&2; echo "$BIN/tekton-entrypoint-$TEKTON_VERSION" ;;
        termparse) build_termparse >&2; echo "$BIN/tekton-termparse-$TEKTON_VERSION" ;;
        etcd) build_etcd >&2; echo "$BIN/etcd-$ETCD_VERSION" ;;
        kube-apiserver) build_kube_apiserver >&2; echo "$BIN/kube-apiserver-$KUBE_VERSION" ;;
        *) die "unknown peer '$1' (known: entrypoint termparse etcd kube-apiserver)" ;;
    esac
}

case "${1:-}" in
    build)
        shift
        for peer in "${@:-entrypoint}"; do
            build_peer "$peer"
        done
        ;;
    path)
        [[ $# -eq 2 ]] || die "usage: tools/peers.sh path PEER"
        peer_path "$2"
        ;;
    *) die "usage: tools/peers.sh build [PEER...] | path PEER" ;;
esac
