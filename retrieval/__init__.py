"""Django-free retrieval: decode images, extract backbone features, store them, index and search."""
