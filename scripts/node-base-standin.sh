#!/usr/bin/env bash
# Builds a local stand-in for the Dockerfile's Node 20 base image (Debian bookworm + this machine's Node 20),
# for machines that cannot pull from a container registry. Usage: scripts/node-base-standin.sh [image-name]
set -euo pipefail
cd "$(dirname "$0")/.."

image="${1:-$(sed -n 's/^FROM \([^ ]*\) AS build$/\1/p' Dockerfile | head -1)}"
[ -n "$image" ] || { echo "no base image name found in Dockerfile" >&2; exit 1; }
case "$image" in */*) ;; *) image="docker.io/library/$image" ;; esac
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/scripts/containers.conf}"

node_bin="$(readlink -f "$(command -v node)")"
node_version="$("$node_bin" --version)"
case "$node_version" in v20.*) ;; *) echo "this machine's node is $node_version, not Node 20" >&2; exit 1 ;; esac
npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"

# Debian's own mirror, as apt on this machine is configured.
mirror="$( (grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true) | head -1 | tr -d ' ')"
mirror="${mirror:-http://deb.debian.org/debian}"

rootfs="${STANDIN_ROOTFS:-/var/tmp/runspec-room/bookworm-rootfs}"
if [ ! -x "$rootfs/bin/sh" ]; then
  echo "debootstrap bookworm from $mirror into $rootfs"
  rm -rf "$rootfs.partial"
  mkdir -p "$(dirname "$rootfs")"
  debootstrap --variant=minbase bookworm "$rootfs.partial" "$mirror" >/dev/null
  rm -rf "$rootfs.partial/var/cache/apt/archives/"*.deb
  mv "$rootfs.partial" "$rootfs"
fi

ctr="$(buildah from scratch)"
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
mnt="$(buildah mount "$ctr")"
cp -a "$rootfs/." "$mnt/"
install -D -m 0755 "$node_bin" "$mnt/usr/local/bin/node"
mkdir -p "$mnt/usr/local/lib/node_modules"
cp -a "$npm_dir" "$mnt/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$mnt/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$mnt/usr/local/bin/npx"
# As in the official image: a `node` user and group with id 1000.
chroot "$mnt" groupadd --gid 1000 node
chroot "$mnt" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
# This machine reaches the npm registry through a proxy whose CA node must trust: carry it over, so
# `npm ci` inside the build works here as it does on the host. (The real base image has no such need.)
extra_env=()
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  install -D -m 0644 "$NODE_EXTRA_CA_CERTS" "$mnt/usr/local/share/standin/extra-ca.pem"
  extra_env=(--env NODE_EXTRA_CA_CERTS=/usr/local/share/standin/extra-ca.pem)
fi
buildah umount "$ctr" >/dev/null
buildah config --env "NODE_VERSION=${node_version#v}" --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  "${extra_env[@]}" --cmd node --label "runspec-room.standin=debootstrap bookworm + node $node_version" "$ctr"
buildah commit --quiet "$ctr" "$image" >/dev/null
echo "stand-in $image: Debian bookworm with node $node_version"
