#!/usr/bin/env bash
# Real Go peers for the tests and the benchmark, built from the Go module proxy at pinned versions
# into build/peers/ (git-ignored).  Nothing fetched here is committed; the product stays Python.
#
#   tools/peers.sh build [PEER...]   build the named peers (default: entrypoint); skips what is built
#   tools/peers.sh path PEER         print the peer's executable, building it first if missing
#   tools/peers.sh built PEER...     exit 0 if every named peer is built (never builds; says what is not)
#   tools/peers.sh start [tekton]    a local control plane on 127.0.0.1: etcd + kube-apiserver with
#                                    their own TLS, service-account issuer and an admin token, state in
#                                    build/peers/run/ (made anew), a kubeconfig there; `tekton`
#                                    adds Tekton's CRDs and ConfigMaps (read from the Go module
#                                    cache) and its controller.  Waits for /readyz.
#   tools/peers.sh stop              stop what `start` started (by the pids it recorded)
#   tools/peers.sh status            exit 0 if the control plane is up and ready
#   tools/peers.sh env               print `export NAME=value` lines describing the control plane
#
# Peers:
#   entrypoint   Tekton Pipelines' own step entrypoint (github.com/tektoncd/pipeline/cmd/entrypoint):
#                the baseline `make bench` pairs ours with.
#   termparse    Tekton's own termination-message parser (pkg/termination.ParseMessage) behind a
#                small generated main: the differential peer of our parser (tests/unit).
#   kube-apiserver, etcd
#                Kubernetes' API server (k8s.io/kubernetes/cmd/kube-apiserver) and its store, for the
#                end-to-end tests (issue 14, tests/e2e).  Cold (empty module and build caches, 2
#                cores, 2026-12-04): etcd 124 s + kube-apiserver 670 s, 13 min 15 s in all; warm,
#                nothing.  `start` then takes ~5 s.
#   kubectl      k8s.io/kubernetes/cmd/kubectl from the same wrapper module (optional: the tests use
#                Python clients).
#   tekton-controller
#                Tekton Pipelines' controller (github.com/tektoncd/pipeline/cmd/controller).
#   fulcio       Sigstore's certificate authority (github.com/sigstore/fulcio, its root main package):
#                the real peer of the keyless signing tests (tests/support/fulcio_peer.py runs
#                `fulcio serve --ca ephemeralca` against a Kubernetes issuer).  Cold (empty module
#                and build caches, 2 cores, 2026-12-04): 75 s; warm, nothing.
#
# Environment: PEERS_DIR (instead of build/peers), PEERS_RUN_DIR (the control plane's state, instead
# of build/peers/run), PEERS_API_PORT, PEERS_ETCD_PORT, PEERS_ETCD_PEER_PORT (16443, 23790, 23800).
# PEERS_TEKTON_PROBES_PORT, PEERS_TEKTON_PROFILING_PORT (18080, 18008; knative also takes *:8080),
# PEERS_ENTRYPOINT_IMAGE (-entrypoint-image, localhost/signed-entrypoint:latest).
set -euo pipefail

# The newest release of github.com/tektoncd/pipeline that the module proxy served on 2026-12-03
# (v1.16.0 and v1.15.2 were refused).  Its go.mod has no replace lines and asks for go 1.26.4.
TEKTON_VERSION=v1.15.1
# The newest Kubernetes release the proxy served on 2026-12-04 (v1.34.0 .. v1.37.2 listed); its
# staging modules are v0.<minor>.<patch>.  Cold (empty module and build caches, 2 cores): 670 s.
KUBE_VERSION=v1.37.2
# The etcd release line Kubernetes 1.37 requires (its go.mod: go.etcd.io/etcd/client/v3 v3.7.0), at
# the newest patch the proxy serves; built from its own modules.
ETCD_VERSION=v3.7.3
# The newest Fulcio release the proxy served on 2026-12-04 (v1.6.3 v1.6.6 v1.8.4 v1.8.7 v1.8.8
# listed); its go.mod asks for go 1.26.0 and has no replace lines.
FULCIO_VERSION=v1.8.8

REPO=$(cd "$(dirname "$0")/.." && pwd)
# PEERS_DIR moves everything (a cold build measured in an empty one, say).
PEERS=${PEERS_DIR:-$REPO/build/peers}
BIN="$PEERS/bin"
# The control plane's state; PEERS_RUN_DIR moves it (the e2e tests use their own, so that a control
# plane a developer started is left alone).
RUN=${PEERS_RUN_DIR:-$PEERS/run}
# The control plane's ports on 127.0.0.1 (override to run two at once).
API_PORT=${PEERS_API_PORT:-16443}
ETCD_PORT=${PEERS_ETCD_PORT:-23790}
ETCD_PEER_PORT=${PEERS_ETCD_PEER_PORT:-23800}

KNOWN="entrypoint termparse etcd kube-apiserver kubectl tekton-controller fulcio"

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

# k8s.io/kubernetes cannot be `go install`ed: its go.mod requires every staging module at v0.0.0
# and replaces it with ./staging/src/k8s.io/<name>, which a dependent module does not inherit.  The
# wrapper requires and replaces each staging module (the list read from k8s.io/kubernetes' own
# go.mod) at the release's v0.<minor>.<patch>.  Made once; kube-apiserver and kubectl share it.
kube_wrapper() {
    local mod="$PEERS/src/kube-$KUBE_VERSION"
    if [[ ! -f "$mod/tools.go" ]]; then
        mkdir -p "$mod"
        local gomod staging
        gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
        [[ -f "$gomod" ]] || die "the module proxy did not serve k8s.io/kubernetes@$KUBE_VERSION"
        staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$gomod")
        [[ -n "$staging" ]] || die "k8s.io/kubernetes@$KUBE_VERSION's go.mod names no staging module"
        {
            printf 'module peers.local/kube\n\ngo 1.26\n\nrequire k8s.io/kubernetes %s\n\n' "$KUBE_VERSION"
            for m in $staging; do printf 'require %s v0.%s\n' "$m" "${KUBE_VERSION#v1.}"; done
            for m in $staging; do printf 'replace %s => %s v0.%s\n' "$m" "$m" "${KUBE_VERSION#v1.}"; done
        } > "$mod/go.mod"
        printf 'package tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' > "$mod/tools.go.tmp"
        (cd "$mod" && mv tools.go.tmp tools.go && { go mod tidy -e >/dev/null 2>&1 || true; })
    fi
    echo "$mod"
}

# CMD (kube-apiserver, kubectl) from the wrapper module, statically linked (CGO_ENABLED=0).
build_kube_cmd() {
    local cmd=$1 out="$BIN/$1-$KUBE_VERSION"
    [[ -x "$out" ]] && return 0
    go_env
    mkdir -p "$BIN"
    local start=$SECONDS mod
    echo "peers.sh: building $cmd $KUBE_VERSION from the Go module proxy" >&2
    mod=$(kube_wrapper)
    # The release's own version in /version (a module build would say v0.0.0-master+$Format:%H$).
    local v=k8s.io/component-base/version minor=${KUBE_VERSION#v1.}
    minor=${minor%%.*}
    (cd "$mod" && go build -mod=mod \
        -ldflags "-X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
        -o "$out.tmp" "k8s.io/kubernetes/cmd/$cmd") \
        || die "building $cmd $KUBE_VERSION failed (see above)"
    mv "$out.tmp" "$out"
    echo "peers.sh: built $out in $((SECONDS - start)) s" >&2
}

build_kube_apiserver() { build_kube_cmd kube-apiserver; }

# Tekton's controller from the entrypoint's throwaway module (same release, same go.sum).
build_tekton_controller() {
    local out="$BIN/tekton-controller-$TEKTON_VERSION"
    [[ -x "$out" ]] && return 0
    build_entrypoint
    go_env
    local start=$SECONDS mod="$PEERS/src/tekton-$TEKTON_VERSION"
    echo "peers.sh: building Tekton's controller $TEKTON_VERSION from the Go module proxy" >&2
    (cd "$mod" && go build -mod=mod -o "$out.tmp" github.com/tektoncd/pipeline/cmd/controller) \
        || die "building github.com/tektoncd/pipeline/cmd/controller@$TEKTON_VERSION failed (see above)"
    mv "$out.tmp" "$out"
    echo "peers.sh: built $out in $((SECONDS - start)) s" >&2
}

# Fulcio's own main package (the module root) from a throwaway module that requires the release;
# `fulcio version` reports the release (release-utils' version, as Fulcio's Makefile sets it).
# CGO_ENABLED=0 leaves out the PKCS#11 CA, which nothing here uses.
build_fulcio() {
    local out="$BIN/fulcio-$FULCIO_VERSION"
    [[ -x "$out" ]] && return 0
    go_env
    mkdir -p "$BIN"
    local start=$SECONDS mod="$PEERS/src/fulcio-$FULCIO_VERSION"
    echo "peers.sh: building Fulcio $FULCIO_VERSION from the Go module proxy" >&2
    mkdir -p "$mod"
    printf 'module peers.local/fulcio\n\ngo 1.26\n\nrequire github.com/sigstore/fulcio %s\n' \
        "$FULCIO_VERSION" > "$mod/go.mod"
    printf 'package tools\n\nimport _ "github.com/sigstore/fulcio"\n' > "$mod/tools.go"
    (cd "$mod" && go mod tidy -e >/dev/null 2>&1 || true
     cd "$mod" && go build -mod=mod -ldflags "-X sigs.k8s.io/release-utils/version.gitVersion=$FULCIO_VERSION" \
        -o "$out.tmp" github.com/sigstore/fulcio) \
        || die "building github.com/sigstore/fulcio@$FULCIO_VERSION failed (see above)"
    mv "$out.tmp" "$out"
    echo "peers.sh: built $out in $((SECONDS - start)) s" >&2
}

build_peer() {
    case "$1" in
        entrypoint) build_entrypoint ;;
        termparse) build_termparse ;;
        etcd) build_etcd ;;
        kube-apiserver) build_kube_apiserver ;;
        kubectl) build_kube_cmd kubectl ;;
        tekton-controller) build_tekton_controller ;;
        fulcio) build_fulcio ;;
        *) die "unknown peer '$1' (known: $KNOWN)" ;;
    esac
}

# The executable a peer builds into (whether or not it is built yet).
peer_file() {
    case "$1" in
        entrypoint) echo "$BIN/tekton-entrypoint-$TEKTON_VERSION" ;;
        termparse) echo "$BIN/tekton-termparse-$TEKTON_VERSION" ;;
        etcd) echo "$BIN/etcd-$ETCD_VERSION" ;;
        kube-apiserver) echo "$BIN/kube-apiserver-$KUBE_VERSION" ;;
        kubectl) echo "$BIN/kubectl-$KUBE_VERSION" ;;
        tekton-controller) echo "$BIN/tekton-controller-$TEKTON_VERSION" ;;
        fulcio) echo "$BIN/fulcio-$FULCIO_VERSION" ;;
        *) die "unknown peer '$1' (known: $KNOWN)" ;;
    esac
}

peer_path() {
    local file
    file=$(peer_file "$1")
    build_peer "$1" >&2
    echo "$file"
}

# -- a local control plane -------------------------------------------------------------------------
# Everything under $RUN, made anew by each `start`: pki/ (a CA, the API server's serving certificate,
# the service-account signing key), the admin's static token, etcd's data, the logs, the pids and
# the kubeconfig.  Plain HTTP between kube-apiserver and etcd, on 127.0.0.1 only.

API_URL="https://127.0.0.1:$API_PORT"
# `status`, `stop` and `env` find a running control plane where `start` put it, whatever ports it took.
if [[ -z "${PEERS_API_PORT:-}" && -f "$RUN/env" ]]; then
    API_URL=$(sed -n 's/^export PEERS_KUBE_API=//p' "$RUN/env")
fi

alive() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

ready() {
    [[ -f "$RUN/admin-token" ]] && alive kube-apiserver || return 1
    curl -fsS --max-time 5 --cacert "$RUN/pki/ca.crt" \
        -H "Authorization: Bearer $(cat "$RUN/admin-token")" "$API_URL/readyz" >/dev/null 2>&1
}

make_pki() {
    local pki="$RUN/pki"
    mkdir -p "$pki"
    (
        cd "$pki"
        local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
        openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days 30 -subj "/CN=peers-local-ca" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
        openssl req "${ec[@]}" -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
        printf '%s\n' \
            "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature" \
            "extendedKeyUsage=serverAuth" \
            "subjectKeyIdentifier=hash" \
            "authorityKeyIdentifier=keyid" \
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
            > apiserver.ext
        openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
            -extfile apiserver.ext -out apiserver.crt
        # RS256, kube-apiserver's usual service-account signing algorithm.
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key
        openssl pkey -in sa.key -pubout -out sa.pub
    ) >"$RUN/pki.log" 2>&1 || die "making the control plane's keys failed: $(cat "$RUN/pki.log")"
    # The admin: a static bearer token in system:masters (--token-auth-file).
    local token
    token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    printf '%s' "$token" > "$RUN/admin-token"
    printf '%s,admin,admin-uid,system:masters\n' "$token" > "$pki/tokens.csv"
    chmod 600 "$RUN/admin-token" "$pki/tokens.csv" "$pki"/*.key
}

write_kubeconfig() {
    cat > "$RUN/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: peers
  cluster:
    server: $API_URL
    certificate-authority: $RUN/pki/ca.crt
users:
- name: admin
  user:
    token: $(cat "$RUN/admin-token")
contexts:
- name: peers
  context: {cluster: peers, user: admin}
current-context: peers
EOF
    chmod 600 "$RUN/kubeconfig"
}

# Starts "$@" in its own session, detached, logging to $RUN/NAME.log; records its pid.
launch() {
    local name=$1
    shift
    nohup setsid "$@" >"$RUN/$name.log" 2>&1 </dev/null &
    echo $! > "$RUN/$name.pid"
}

wait_for() {
    local what=$1 seconds=$2 name=$3
    shift 3
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        alive "$name" || die "$what exited before it was ready; the end of $RUN/$name.log:
$(tail -n 20 "$RUN/$name.log")"
        ((SECONDS < deadline)) || die "$what was not ready within $seconds s (see $RUN/$name.log)"
        sleep 0.5
    done
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

etcd_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" >/dev/null 2>&1; }

start_control_plane() {
    if ready; then
        echo "peers.sh: the control plane is already up at $API_URL" >&2
        return 0
    fi
    stop_control_plane
    local etcd apiserver
    etcd=$(peer_file etcd) apiserver=$(peer_file kube-apiserver)
    [[ -x "$etcd" && -x "$apiserver" ]] || die "etcd or kube-apiserver is not built: tools/peers.sh build etcd kube-apiserver"
    for port in "$API_PORT" "$ETCD_PORT" "$ETCD_PEER_PORT"; do
        port_free "$port" || die "port $port on 127.0.0.1 is taken (set PEERS_API_PORT, PEERS_ETCD_PORT, PEERS_ETCD_PEER_PORT)"
    done
    rm -rf "$RUN"
    mkdir -p "$RUN"
    chmod 700 "$RUN"
    local start=$SECONDS
    make_pki
    launch etcd "$etcd" --name peers --data-dir "$RUN/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "peers=http://127.0.0.1:$ETCD_PEER_PORT" --log-level warn
    wait_for etcd 30 etcd etcd_healthy
    local pki="$RUN/pki"
    # The issuer is the API server's own https URL, so OIDC discovery from `iss` reaches it; the
    # API audiences are the issuer (kube-apiserver's default, said explicitly).  No endpoint
    # reconciler: since 1.37 it refuses a loopback --advertise-address (1.36 only logged it).
    launch kube-apiserver "$apiserver" \
        --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
        --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
        --client-ca-file "$pki/ca.crt" \
        --token-auth-file "$pki/tokens.csv" \
        --authorization-mode Node,RBAC \
        --service-account-issuer "$API_URL" \
        --service-account-key-file "$pki/sa.pub" \
        --service-account-signing-key-file "$pki/sa.key" \
        --api-audiences "$API_URL" \
        --service-cluster-ip-range 10.96.0.0/24 \
        --endpoint-reconciler-type none \
        --cert-dir "$RUN/apiserver-certs" \
        --profiling=false --v 1
    wait_for kube-apiserver 180 kube-apiserver ready
    write_kubeconfig
    write_env
    echo "peers.sh: control plane ready at $API_URL in $((SECONDS - start)) s (state in $RUN)" >&2
}

stop_one() {
    local name=$1 pid
    [[ -f "$RUN/$name.pid" ]] || return 0
    pid=$(cat "$RUN/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 40); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$RUN/$name.pid"
}

stop_control_plane() {
    stop_one tekton-controller
    stop_one kube-apiserver
    stop_one etcd
}

# Tekton's CRDs and ConfigMaps, read from the Go module cache (never copied into the repository),
# then its controller, out of cluster with the admin's kubeconfig (no webhook: nothing here needs
# defaulting or conversion by it; the controller sets defaults itself).  Ports: knative's health
# probes take 8080 (fixed), Tekton's own PEERS_TEKTON_PROBES_PORT, profiling PEERS_TEKTON_PROFILING_PORT.
TEKTON_NAMESPACE=tekton-pipelines
# The entrypoint image `make image` builds (images/README.md); the shell image, one of its step images.
ENTRYPOINT_IMAGE=${PEERS_ENTRYPOINT_IMAGE:-localhost/signed-entrypoint:latest}
TEKTON_PROBES_PORT=${PEERS_TEKTON_PROBES_PORT:-18080}
TEKTON_PROFILING_PORT=${PEERS_TEKTON_PROFILING_PORT:-18008}

kube_apply() {
    local py="$REPO/.venv/bin/python"
    [[ -x "$py" ]] || die "applying objects needs the project's venv: make venv"
    "$py" "$REPO/tools/kube_apply.py" --quiet --server "$API_URL" --ca-file "$RUN/pki/ca.crt" \
        --token-file "$RUN/admin-token" "$@" || die "applying $* failed (see above)"
}

tekton_ready() {
    grep -q 'Starting controllers' "$RUN/tekton-controller.log" 2>/dev/null \
        && curl -fsS --max-time 2 "http://127.0.0.1:$TEKTON_PROBES_PORT/readiness" >/dev/null 2>&1
}

start_tekton() {
    local ctl config
    ctl=$(peer_file tekton-controller)
    config="$PEERS/go/mod/github.com/tektoncd/pipeline@$TEKTON_VERSION/config"
    [[ -x "$ctl" ]] || die "Tekton's controller is not built: tools/peers.sh build tekton-controller"
    [[ -d "$config/300-crds" ]] || die "Tekton $TEKTON_VERSION's config/ is not in the module cache ($config)"
    for port in 8080 "$TEKTON_PROBES_PORT" "$TEKTON_PROFILING_PORT"; do
        port_free "$port" || die "port $port is taken (Tekton's controller needs 8080 for knative's probes; set PEERS_TEKTON_PROBES_PORT, PEERS_TEKTON_PROFILING_PORT)"
    done
    local start=$SECONDS
    # No metrics or trace exporter (a metrics one would listen on 9090); the rest as Tekton ships it.
    printf '%s\n' "apiVersion: v1" "kind: ConfigMap" \
        "metadata: {name: config-observability, namespace: $TEKTON_NAMESPACE}" \
        "data: {metrics-protocol: none, tracing-protocol: none}" > "$RUN/tekton-overrides.yaml"
    kube_apply "$config/100-namespace" "$config/300-crds" "$config"/config-*.yaml "$RUN/tekton-overrides.yaml"
    launch tekton-controller env \
        SYSTEM_NAMESPACE="$TEKTON_NAMESPACE" KUBERNETES_MIN_VERSION=v1.28.0 \
        CONFIG_DEFAULTS_NAME=config-defaults CONFIG_LOGGING_NAME=config-logging \
        CONFIG_OBSERVABILITY_NAME=config-observability CONFIG_FEATURE_FLAGS_NAME=feature-flags \
        CONFIG_LEADERELECTION_NAME=config-leader-election-controller CONFIG_SPIRE=config-spire \
        METRICS_DOMAIN=tekton.dev/pipeline \
        PROBES_PORT="$TEKTON_PROBES_PORT" PROFILING_PORT="$TEKTON_PROFILING_PORT" \
        "$ctl" -kubeconfig "$RUN/kubeconfig" -disable-ha \
        -entrypoint-image "$ENTRYPOINT_IMAGE" \
        -nop-image "$ENTRYPOINT_IMAGE" \
        -sidecarlogresults-image "$ENTRYPOINT_IMAGE" \
        -workingdirinit-image "$ENTRYPOINT_IMAGE" \
        -shell-image "localhost/signed-entrypoint-step-debian:latest" \
        -shell-image-win "localhost/signed-entrypoint-no-windows-shell:latest"
    wait_for "Tekton's controller" 120 tekton-controller tekton_ready
    printf 'export %s=%q\n' PEERS_TEKTON_NAMESPACE "$TEKTON_NAMESPACE" \
        PEERS_ENTRYPOINT_IMAGE "$ENTRYPOINT_IMAGE" >> "$RUN/env"
    echo "peers.sh: Tekton's controller $TEKTON_VERSION ready in $((SECONDS - start)) s (-entrypoint-image $ENTRYPOINT_IMAGE)" >&2
}

# The control plane as `export NAME=value` lines, kept in $RUN/env by `start` (with the ports it used).
write_env() {
    local name value
    for pair in \
        "KUBECONFIG=$RUN/kubeconfig" \
        "PEERS_KUBE_API=$API_URL" \
        "PEERS_KUBE_ISSUER=$API_URL" \
        "PEERS_KUBE_CA_FILE=$RUN/pki/ca.crt" \
        "PEERS_KUBE_TOKEN_FILE=$RUN/admin-token" \
        "PEERS_KUBE_VERSION=$KUBE_VERSION" \
        "PEERS_ETCD_VERSION=$ETCD_VERSION" \
        "PEERS_TEKTON_VERSION=$TEKTON_VERSION"; do
        name=${pair%%=*} value=${pair#*=}
        printf 'export %s=%q\n' "$name" "$value"
    done > "$RUN/env"
}

print_env() {
    [[ -f "$RUN/env" ]] || die "the control plane was never started: tools/peers.sh start"
    cat "$RUN/env"
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
    built)
        shift
        [[ $# -gt 0 ]] || die "usage: tools/peers.sh built PEER..."
        missing=()
        for peer in "$@"; do
            [[ -x "$(peer_file "$peer")" ]] || missing+=("$peer")
        done
        if [[ ${#missing[@]} -gt 0 ]]; then
            echo "not built: ${missing[*]} (tools/peers.sh build ${missing[*]})"
            exit 1
        fi
        ;;
    start)
        shift
        start_control_plane
        for extra in "$@"; do
            case "$extra" in
                tekton) start_tekton ;;
                *) die "usage: tools/peers.sh start [tekton]" ;;
            esac
        done
        ;;
    stop) stop_control_plane ;;
    status) ready ;;
    env) print_env ;;
    *) die "usage: tools/peers.sh build [PEER...] | path PEER | built PEER... | start [tekton] | stop | status | env" ;;
esac
