"""stereocrafter: 2D-to-stereo video conversion (DepthCrafter depth + StereoCrafter inpainting)."""

__version__ = "0.1.0"
