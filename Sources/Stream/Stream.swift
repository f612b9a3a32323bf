// The Stream module; see ../shared/docs/ARCHITECTURE.md.
