"""``python -m stereocrafter.testing``: ``weights.main`` (tiny weights and a sample clip)."""

from stereocrafter.testing.weights import main

if __name__ == "__main__":
    main()
