"""Where the owning project of a forwarded message comes from."""
