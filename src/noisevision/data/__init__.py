"""Writing, reading and streaming image collections."""
