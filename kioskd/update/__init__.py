"""The van's A/B updates, engine RAUC (Debian 12's ``rauc`` 1.8: signed bundles, two root slots): the client kioskd
uses (``rauc``), RAUC's boot loader backend for systemd-boot with boot counting (``bootloader``) and the boot's
health check before ``boot-complete.target`` (``health``), and the download of a bundle the office names by URL and
sha256 (``download``). Nothing here decides *when* to install: the station's
update policy (``kioskd.policies.update``) does; nothing here writes a partition itself: RAUC does."""
