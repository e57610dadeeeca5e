# /etc/profile.d/kioskd.sh of the van's image: kioskctl in a login shell (the agents' user, a technician) talks to
# the system daemon's socket. Without it kioskctl looks for a per-user daemon ($XDG_RUNTIME_DIR/kioskd, /tmp/…),
# which is right on a developer's laptop and wrong in the van.
export KIOSKD_SOCKET=/run/kioskd/kioskd.sock
