"""Adding an inpainting stage touches its own module, its registry entry and the preset and catalog
tables, nothing else: a copy of the package gets a throwaway stage that copies the splat (no
weights, no model) in those four places only, and converts a clip with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

STAGE = '''"""A throwaway inpainting stage: the right view is the splat, its holes left as they are."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from stereocrafter.models.inpainting import plan_chunks


class CopySplatStage:
    name: ClassVar[str] = "copy-splat"
    components: ClassVar[tuple[Any, ...]] = ()

    def __init__(self, device: torch.device) -> None:
        self.pipeline, self._device = None, device
        self.watched, self.checked, self.compiled = torch.nn.Identity(), [], torch.nn.Identity()

    @classmethod
    def load(cls, weights_dir, *, device, dtype, shared):
        return cls(device)

    @property
    def device(self) -> torch.device:
        return self._device

    @staticmethod
    def plan(num_frames, config):
        return plan_chunks(num_frames, 8, 0)

    @staticmethod
    def increments(chunks, config):
        return []

    @staticmethod
    def warmup_calls(config, frame_size):
        return []

    def warm_up(self, call) -> None:
        pass

    def iter_inpaint(self, source, config, generator):
        for chunk in self.plan(len(source), config):
            warped, _ = source[chunk.start : chunk.end]
            yield chunk.start + chunk.reused, warped[chunk.reused :]  # the frames the chunk keeps
'''

SCRIPT = """
import sys
import numpy as np
from stereocrafter.catalog import MODELS, models_of
from stereocrafter.config import StereoConfig
from stereocrafter.pipeline.loading import load_stereo_pipeline
from stereocrafter.stages.registry import check_registries, components_of
from stereocrafter.testing.media import scene_frames

check_registries()
assert models_of(["copy"]) == ("depthcrafter", "copy-splat", "svd"), models_of(["copy"])
assert MODELS["copy-splat"].licence == "MIT (a test)"
pipeline = load_stereo_pipeline(sys.argv[1], presets=("copy",))
frames = scene_frames(12, 96, 64)
out, grids = [], []
config = StereoConfig.from_preset("copy", depth_steps=1)
assert config.inpainting_model == "copy-splat"
from stereocrafter.pipeline.types import RunHooks
pipeline.run(lambda: iter([frames]), out.append, num_frames=12, width=96, height=64, mode="sbs",
             config=config, hooks=RunHooks(grid_sink=grids.append))
sbs, grid = np.concatenate(out), np.concatenate(grids)
assert sbs.shape == (12, 64, 192, 3)
assert np.array_equal(sbs[:, :, 96:], grid[:, 64:, 96:]), "the right view is not the splat"
print("converted with", sorted(pipeline.inpainting_stages), [c.name for c in components_of(["copy"])])
"""


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def test_a_new_inpainting_stage_needs_its_module_a_registry_entry_and_table_rows(
    tiny_weights: Path, tmp_path: Path
) -> None:
    package = tmp_path / "stereocrafter"
    shutil.copytree(ROOT / "stereocrafter", package, ignore=shutil.ignore_patterns("__pycache__"))
    # 1. its own module
    (package / "stages" / "copysplat.py").write_text(STAGE)
    # 2. its registry entry
    registry = package / "stages" / "registry.py"
    vda = "from stereocrafter.stages.vda import VdaStage\n"
    _edit(registry, vda, vda + "from stereocrafter.stages.copysplat import CopySplatStage\n")
    entry = "    StereoCrafterStage.name: StereoCrafterStage,\n"
    _edit(registry, entry, entry + "    CopySplatStage.name: CopySplatStage,\n")
    # 3. its preset row and 4. its catalog card
    turbo = '        "turbo": MappingProxyType('
    _edit(
        package / "presets.py",
        turbo,
        '        "copy": MappingProxyType({"inpainting_model": "copy-splat"}),\n' + turbo,
    )
    svd = '        "svd": ModelCard('
    card = 'ModelCard("copy-splat", "inpainting", "none/copy-splat", "MIT (a test)", "the splat")'
    _edit(package / "catalog.py", svd, f'        "copy-splat": {card},\n' + svd)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_weights)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "converted with ['copy-splat']" in done.stdout, done.stdout
    changed = {p.relative_to(package).as_posix() for p in package.rglob("*.py")
               if not (ROOT / "stereocrafter" / p.relative_to(package)).is_file()
               or (ROOT / "stereocrafter" / p.relative_to(package)).read_text() != p.read_text()}  # fmt: skip
    assert changed == {"stages/copysplat.py", "stages/registry.py", "presets.py", "catalog.py"}
