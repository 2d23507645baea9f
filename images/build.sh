#!/usr/bin/env bash
# Builds the entrypoint image (the top-level Dockerfile, from dist/bin/) and the step images the
# container tests run in, without pulling anything from a registry: the entrypoint image is FROM
# scratch, and each step image is a root filesystem made from Debian packages (apt-get download +
# dpkg-deb -x) and imported as a single layer.  See images/README.md.
#
# Usage: bash images/build.sh [IMAGE...]   IMAGE: entrypoint debian musl static empty (default: all)
# Environment:
#   IMAGE_ENGINE     docker or podman (default: docker if a Docker engine answers, else podman)
#   CONTAINERS_CONF  podman's configuration (default: images/containers.conf: runc, ulimits)
# Step images are rebuilt only when their inputs change (this script, their sources, the Debian
# package versions); the entrypoint image is rebuilt through the engine's layer cache.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$REPO/images/containers.conf}"

PREFIX=localhost/signed-entrypoint
WORK=build/images
DEBS="$WORK/debs"
LABEL=signed-entrypoint.inputs

say() { echo "images/build.sh: $*" >&2; }
since() {
    local ms=$((($(date +%s%N) - $1) / 1000000))
    echo "$((ms / 1000)).$((ms % 1000 / 100)) s"
}
fail() {
    say "$*"
    exit 1
}

bash images/ensure-tools.sh

if [ -z "${IMAGE_ENGINE:-}" ]; then
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        IMAGE_ENGINE=docker
    else
        IMAGE_ENGINE=podman
    fi
fi
case "$IMAGE_ENGINE" in
    docker | podman) ;;
    *) fail "IMAGE_ENGINE must be docker or podman, not '$IMAGE_ENGINE'" ;;
esac
engine() { "$IMAGE_ENGINE" "$@"; }

mkdir -p "$DEBS"

# --- Debian packages ------------------------------------------------------------------------------

# File names (with versions) of the packages apt would download; resolving them downloads nothing.
deb_names() {
    local out
    if ! out=$(apt-get download --print-uris "$@" 2>&1); then
        # A fresh machine may have no package lists yet.
        [ "$(id -u)" -eq 0 ] || fail "apt-get cannot resolve $*: $out"
        apt-get update -q >/dev/null 2>&1 || fail "apt-get update failed: are Debian's repositories reachable?"
        out=$(apt-get download --print-uris "$@" 2>&1) || fail "apt-get cannot resolve $*: $out"
    fi
    awk '{print $2}' <<<"$out" | sort
}

# Downloads the packages missing from the cache; prints the cached .deb paths.
fetch_debs() {
    local names missing=() name list
    list=$(deb_names "$@")
    mapfile -t names <<<"$list"
    for name in "${names[@]}"; do
        [ -f "$DEBS/$name" ] || missing=(1)
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        # The _apt sandbox user cannot write into the repository: download as the caller.
        (cd "$DEBS" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "$@" >/dev/null) ||
            fail "apt-get download $* failed"
    fi
    for name in "${names[@]}"; do
        [ -f "$DEBS/$name" ] || fail "apt-get download did not produce $name"
        echo "$DEBS/$name"
    done
}

# --- images ---------------------------------------------------------------------------------------

inputs_key() {
    # The key of a step image: what it was made from.  sha256sum reads the files named on stdin too.
    { cat images/build.sh; printf '%s\n' "$@"; } | sha256sum | cut -c1-32
}

current_key() {
    engine image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true
}

image_id() { engine image inspect --format '{{ .Id }}' "$1" 2>/dev/null || true; }

# import_rootfs NAME DIR KEY: one layer holding DIR, labelled with KEY; the replaced image is removed.
import_rootfs() {
    local name=$1 dir=$2 key=$3 old
    old=$(image_id "$name")
    # The engines report progress on stderr; keep it for a failure only.
    tar --numeric-owner --owner=0 --group=0 -C "$dir" -c . |
        engine import --change "LABEL $LABEL=$key" - "$name" >"$WORK/import.log" 2>&1 ||
        fail "$IMAGE_ENGINE import of $name failed: $(cat "$WORK/import.log")"
    if [ -n "$old" ] && [ "$old" != "$(image_id "$name")" ]; then
        engine rmi "$old" >/dev/null 2>&1 || true
    fi
}

fresh_rootfs() {
    local dir="$WORK/rootfs/$1"
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "$dir"
}

strip_docs() {
    rm -rf "$1"/usr/share/{doc,man,info,locale,lintian,bug,common-licenses}
}

# build_step_image SHORT KEY_INPUTS... -- builds when the key changed; the body is make_rootfs_SHORT.
build_step_image() {
    local short=$1 name="$PREFIX-step-$1:latest" key dir start
    shift
    key=$(inputs_key "$short" "$@")
    if [ "$(current_key "$name")" = "$key" ]; then
        say "$name is up to date"
        return
    fi
    start=$(date +%s%N)
    dir=$(fresh_rootfs "$short")
    "make_rootfs_$short" "$dir"
    import_rootfs "$name" "$dir" "$key"
    say "built $name in $(since "$start")"
}

# (a) Debian: glibc, dash as /bin/sh, coreutils, grep, sed: what a debian:bookworm step offers a script.
DEBIAN_PACKAGES=(base-files libc6 libgcc-s1 gcc-12-base dash coreutils libacl1 libattr1 libgmp10
    libpcre2-8-0 libselinux1 grep sed)
make_rootfs_debian() {
    local dir=$1 deb
    for deb in "${DEBIAN_DEBS[@]}"; do dpkg-deb -x "$deb" "$dir"; done
    ln -sfn dash "$dir/bin/sh" # dash ships it; make sure
    mkdir -p -m 1777 "$dir/tmp"
    mkdir -p -m 0700 "$dir/root"
    echo 'root:x:0:0:root:/root:/bin/sh' >"$dir/etc/passwd"
    echo 'root:x:0:' >"$dir/etc/group"
    strip_docs "$dir"
    rm -rf "$dir"/usr/lib/x86_64-linux-gnu/gconv # charset converters: nothing here uses iconv
}

# (b) musl: Debian's musl runtime (/lib/ld-musl-x86_64.so.1) and steptool, linked against it.
make_rootfs_musl() {
    local dir=$1 deb
    for deb in "${MUSL_DEBS[@]}"; do dpkg-deb -x "$deb" "$dir"; done
    mkdir -p "$dir/bin"
    musl-gcc -O2 -Wall -Wextra -Werror -o "$dir/bin/steptool" images/musl/steptool.c
    readelf -l "$dir/bin/steptool" | grep -q 'interpreter: /lib/ld-musl-x86_64.so.1' ||
        fail "steptool is not dynamically linked against musl"
    [ -e "$dir/lib/ld-musl-x86_64.so.1" ] || fail "the musl package has no /lib/ld-musl-x86_64.so.1"
    strip_docs "$dir"
}

# (c) static: nothing but Debian's statically linked busybox, as /bin/sh.
make_rootfs_static() {
    local dir=$1 tmp
    tmp=$(mktemp -d)
    dpkg-deb -x "${STATIC_DEBS[0]}" "$tmp"
    mkdir -p "$dir/bin"
    cp "$tmp/bin/busybox" "$dir/bin/busybox"
    ln -s busybox "$dir/bin/sh"
    rm -rf "$tmp"
}

# (d) empty: no files at all; the tests mount the entrypoint into it.
make_rootfs_empty() { :; }

build_entrypoint_image() {
    local name="$PREFIX:latest" ctx="$WORK/context" start old
    [ -x dist/bin/entrypoint ] || fail "dist/bin/entrypoint is missing: run 'make binary' first (or 'make image')"
    start=$(date +%s%N)
    # The build context is only dist/bin/, so that docker does not send .venv and the rest of the tree.
    rm -rf "$ctx"
    mkdir -p "$ctx/dist"
    cp -al dist/bin "$ctx/dist/bin" 2>/dev/null || cp -a dist/bin "$ctx/dist/bin"
    old=$(image_id "$name")
    engine build --quiet -f Dockerfile -t "$name" "$ctx" >/dev/null
    rm -rf "$ctx"
    if [ "$old" = "$(image_id "$name")" ]; then
        say "$name is up to date ($(since "$start"))"
        return
    fi
    [ -z "$old" ] || engine rmi "$old" >/dev/null 2>&1 || true
    say "built $name in $(since "$start")"
}

# Containers that cannot start make every later failure confusing: say so once, with the reason.
check_containers_run() {
    local out
    [ "$IMAGE_ENGINE" = podman ] || return 0
    if ! out=$(podman run --rm --network none "$PREFIX-step-static:latest" /bin/sh -c 'echo ok' 2>&1) ||
        [ "$out" != ok ]; then
        fail "podman cannot run a container on this machine:
$out
(podman runs as root here with runc and the limits in CONTAINERS_CONF=$CONTAINERS_CONF)"
    fi
}

# fetch_debs fails in a command substitution, which set -e sees; a process substitution would hide it.
debs_of() {
    local list
    list=$(fetch_debs "$@")
    mapfile -t DEBS_OUT <<<"$list"
}

targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(entrypoint debian musl static empty)
total_start=$(date +%s%N)
for target in "${targets[@]}"; do
    case "$target" in
        entrypoint) build_entrypoint_image ;;
        debian)
            debs_of "${DEBIAN_PACKAGES[@]}"
            DEBIAN_DEBS=("${DEBS_OUT[@]}")
            build_step_image debian "${DEBIAN_DEBS[@]##*/}"
            ;;
        musl)
            debs_of musl
            MUSL_DEBS=("${DEBS_OUT[@]}")
            build_step_image musl "${MUSL_DEBS[@]##*/}" "$(sha256sum images/musl/steptool.c)" "$(musl-gcc --version | head -1)"
            ;;
        static)
            debs_of busybox-static
            STATIC_DEBS=("${DEBS_OUT[@]}")
            build_step_image static "${STATIC_DEBS[@]##*/}"
            check_containers_run
            ;;
        empty) build_step_image empty ;;
        *) fail "unknown image '$target' (known: entrypoint debian musl static empty)" ;;
    esac
done
say "done in $(since "$total_start") ($IMAGE_ENGINE)"
engine images --filter "reference=$PREFIX*" >&2
