"""The pipeline's stages, each a sibling module behind one small interface, and their registries."""
