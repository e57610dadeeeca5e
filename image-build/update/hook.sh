#!/bin/sh
# The kioskd update bundle's slot hook (run by RAUC's service, as root, with the freshly written slot mounted):
# the slot's kernel and initramfs go to the ESP as vmlinuz-<slot> and initrd-<slot>, which the boot loader
# backend's entry for the slot names. Each file is copied whole, then renamed: a power cut leaves the old one.
set -eu
[ "${1:-}" = slot-post-install ] || exit 0
[ "${RAUC_SLOT_CLASS:-rootfs}" = rootfs ] || exit 0
esp=${KIOSKD_ESP:-/efi}
root=$RAUC_SLOT_MOUNT_POINT
slot=$RAUC_SLOT_BOOTNAME
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n 1)
version=${kernel##*/vmlinuz-}
for pair in "$kernel:vmlinuz-$slot" "$root/boot/initrd.img-$version:initrd-$slot"; do
    cp "${pair%%:*}" "$esp/${pair#*:}.new"
    sync "$esp/${pair#*:}.new" 2>/dev/null || sync
    mv "$esp/${pair#*:}.new" "$esp/${pair#*:}"
done
sync
