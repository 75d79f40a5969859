"""Video files: decoding, encoding, audio, stored depth, stitching, and the threads that overlap
them with the GPU. The only importers of PyAV (checked by import-linter, see ``.importlinter``)."""
