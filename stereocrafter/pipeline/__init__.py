"""The pipeline family: ``run`` (``StereoPipeline``: frames -> depth -> splat -> inpaint -> compose),
its types (``types``), its progress (``progress``), the loader of its stages (``loading``) and their
compile step (``compile``). Which models run is the stages' business (``stereocrafter.stages``); no
module here names one."""
