// The VLM module; see ../shared/docs/ARCHITECTURE.md.
