"""Lifecycle commands that sit above the build pipeline: verify, repair, append, import,
export, preview, convert, info. Each works on a committed dataset; none is a pipeline stage."""
