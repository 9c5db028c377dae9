#!/usr/bin/env bash
# Build the furet lab base image: Debian 12 (bookworm, the default) or 13 (trixie, the hosts
# of a new cluster: MariaDB 11.8) with systemd as PID 1, sshd and python3, security updates
# applied, no SSH host keys (each host makes its own at first boot). Built with debootstrap
# and `podman import`, since no image registry is reachable.
#
# Usage: lab/image/build.sh IMAGE_TAG [SUITE]
# The caller (migration/lab/image.py) names the tag after a hash of this recipe (and the
# suite), so the image is rebuilt only when something under lab/image/ changes.
set -euo pipefail

tag=${1:?usage: build.sh IMAGE_TAG [SUITE]}
suite=${2:-bookworm}
here=$(cd "$(dirname "$0")" && pwd)
mirror=${FURET_LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${FURET_LAB_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
packages=systemd,systemd-sysv,dbus,openssh-server,python3,python3-apt,sudo,iproute2,iputils-ping,ca-certificates,procps,less,gnupg,apt-transport-https,locales,tzdata

work=$(mktemp -d /var/tmp/furet-lab-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs

step() { printf '[lab-image] %(%H:%M:%S)T %s\n' -1 "$*"; }

step "debootstrap $suite (minbase) from $mirror"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" \
  >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log"; exit 1; }

step "apt sources with $suite-updates and $suite-security; apply updates"
cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security_mirror $suite-security main
SOURCES
chroot "$rootfs" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
  'apt-get update -qq && apt-get -y -qq -o Dpkg::Options::=--force-confold upgrade' \
  >"$work/upgrade.log" 2>&1 || { tail -n 30 "$work/upgrade.log"; exit 1; }

step "container tweaks: host keys at first boot, machine-id, units that make no sense here"
rm -f "$rootfs"/etc/ssh/ssh_host_*
install -m 0644 "$here/files/furet-ssh-hostkeys.service" \
  "$rootfs/etc/systemd/system/furet-ssh-hostkeys.service"
ln -sf /etc/systemd/system/furet-ssh-hostkeys.service \
  "$rootfs/etc/systemd/system/multi-user.target.wants/furet-ssh-hostkeys.service"
install -m 0644 "$here/files/sshd-furet-lab.conf" "$rootfs/etc/ssh/sshd_config.d/furet-lab.conf"
install -d -m 0700 "$rootfs/root/.ssh"
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
for unit in getty@tty1.service console-getty.service systemd-udevd.service \
            systemd-modules-load.service sys-kernel-config.mount sys-kernel-debug.mount \
            systemd-remount-fs.service apt-daily.timer apt-daily-upgrade.timer; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
chroot "$rootfs" apt-get clean
# apt lists stay: hosts can install at once; roles refresh them when older than an hour.
rm -rf "$rootfs"/tmp/*

step "podman import as $tag"
tar -C "$rootfs" --numeric-owner -cf - . | podman import \
  --change 'CMD ["/sbin/init"]' \
  --change 'STOPSIGNAL=SIGRTMIN+3' \
  --change "LABEL furet.lab.recipe=$tag" \
  - "$tag" >"$work/import.log" 2>&1 || { cat "$work/import.log"; exit 1; }
step "done: $tag"
