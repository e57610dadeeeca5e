"""Real network backends: NetworkManager holds the van's connections; kioskd asks it."""
