// The Prune module; see ../shared/docs/ARCHITECTURE.md.
