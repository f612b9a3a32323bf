// The Pipeline module; see ../shared/docs/ARCHITECTURE.md.
