"""Dashboard pages: one module per page, each exposing render()."""
