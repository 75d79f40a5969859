"""The diffusion models: DepthCrafter's video depth, StereoCrafter's inpainting, their shared SVD
parts. With ``loading`` and ``testing`` (which build and write them), the only importers of
diffusers and transformers (checked by import-linter, see ``.importlinter``)."""
