// The Tensor module; see ../shared/docs/ARCHITECTURE.md.
