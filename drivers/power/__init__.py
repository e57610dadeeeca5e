"""Power backends: VE.Direct, NUT, UPower, sysfs, GPIO, and their combination."""
