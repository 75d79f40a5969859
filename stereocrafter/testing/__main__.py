"""``python -m stereocrafter.testing``: ``weights.main`` (tiny weights and a sample clip)."""

from stereocrafter.testing.weights import main

main()
