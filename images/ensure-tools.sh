#!/usr/bin/env bash
# Makes sure the tools that build and run this project's images are installed: podman (with runc and
# catatonit, which `podman kube play` needs for its pause container), buildah, and the Debian tools the
# step images are made with (apt-get download, dpkg-deb, musl-gcc).
#
# On a fresh Debian or Ubuntu machine, as root (CI), it installs what is missing with apt-get.
# Anywhere else it installs nothing and fails with a message saying what is missing and why.
# Whether containers can actually *run* is checked by images/build.sh, once it has an image to run.
#
# Usage: bash images/ensure-tools.sh   (exit 0: ready; exit 1: cannot be made ready, reason on stderr)
set -euo pipefail

# command -> Debian package providing it
declare -A PACKAGE_OF=(
    [podman]=podman
    [buildah]=buildah
    [runc]=runc
    [catatonit]=catatonit
    [musl-gcc]=musl-tools
    [gcc]=gcc
    [readelf]=binutils
)

missing_packages() {
    local cmd
    for cmd in "${!PACKAGE_OF[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || echo "${PACKAGE_OF[$cmd]}"
    done | sort -u
}

fail() {
    echo "images/ensure-tools.sh: $*" >&2
    exit 1
}

for tool in apt-get dpkg-deb; do
    command -v "$tool" >/dev/null 2>&1 ||
        fail "'$tool' not found: the step images are built from Debian packages, so this needs a Debian or Ubuntu machine."
done

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    fail "missing ${missing[*]}, and not running as root, so they cannot be installed here.
Install them with:  sudo apt-get install -y --no-install-recommends ${missing[*]}
(the container tests run rootful podman with runc; rootless podman is not set up by this project)."
fi

echo "images/ensure-tools.sh: installing ${missing[*]}" >&2
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
install() {
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/ensure-tools-apt.log 2>&1
}
# A fresh machine may have no package lists yet (or stale ones): update only when installing fails.
if ! install; then
    apt-get update -q >>/tmp/ensure-tools-apt.log 2>&1 ||
        fail "apt-get update failed (see /tmp/ensure-tools-apt.log): are Debian's package repositories reachable?"
    install || fail "apt-get install ${missing[*]} failed; see /tmp/ensure-tools-apt.log"
fi
echo "images/ensure-tools.sh: installed in $(($(date +%s) - start)) s" >&2

mapfile -t still < <(missing_packages)
[ "${#still[@]}" -eq 0 ] || fail "still missing after installing: ${still[*]}"
