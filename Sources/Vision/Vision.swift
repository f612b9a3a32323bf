// The Vision module; see ../shared/docs/ARCHITECTURE.md.
