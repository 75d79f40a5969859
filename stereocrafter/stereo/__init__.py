"""Pure tensor maths of stereo conversion: disparity and forward splatting, merging an inpaint into
the splatted view, and the output layouts. torch only: no models, no I/O (checked by
import-linter, see ``.importlinter``)."""
