"""Voxel grids of the phantoms (resolution per modality and size) and their storage orientation.

Phantoms are painted on a canonical array whose axes run along world +x (towards the patient's right),
+y (anterior) and +z (superior): nibabel calls this orientation "RAS". A case may then be stored in another
orientation, e.g. "LPS" as DICOM-derived files often are: the array is flipped and the affine changed
together (`reorient`), so every voxel keeps its world position and the anatomy is unchanged in world space.
"""

import dataclasses

import nibabel as nib
import numpy as np

# Per (modality, size): matrix choices (probabilities), in-plane spacing range (mm), slice spacing range (mm)
# and either a fixed slice count or a z-coverage range (mm).
GRID_PRESETS = {
    ("CT", "full"): dict(matrix=((512,), (1.0,)), spacing_mm=(0.66, 0.80), slice_mm=(2.0, 3.0),
                         coverage_mm=(190.0, 240.0)),
    ("MR", "full"): dict(matrix=((256, 288), (0.75, 0.25)), spacing_mm=(1.40, 1.90), slice_mm=(5.5, 9.0),
                         coverage_mm=(220.0, 300.0)),
    ("CT", "small"): dict(matrix=((128,), (1.0,)), spacing_mm=(2.70, 3.00), slice_mm=(7.5, 8.5), num_slices=28),
    ("MR", "small"): dict(matrix=((96,), (1.0,)), spacing_mm=(3.40, 3.90), slice_mm=(11.5, 13.0), num_slices=18),
}  # fmt: skip
SIZES = ("small", "full")
MODALITIES = ("CT", "MR")
# Storage orientations (nibabel axis codes) and how often each is drawn. CT mostly RAS; MR, like files
# converted from DICOM by different tools, often LPS/LAS or with the slice order reversed (LPI).
ORIENTATIONS = {
    "CT": ((("R", "A", "S"), ("L", "P", "S")), (0.75, 0.25)),
    "MR": ((("R", "A", "S"), ("L", "P", "S"), ("L", "A", "S"), ("L", "P", "I")), (0.3, 0.3, 0.2, 0.2)),
}


@dataclasses.dataclass(frozen=True)
class SamplingGrid:
    """An axis-aligned canonical (RAS) grid.

    Args:
        shape: (int, int, int). Voxels along x, y, z.
        spacing_mm: (float, float, float). Voxel size along x, y, z.
        origin_mm: (float, float, float). World position of voxel (0, 0, 0), the patient's left-posterior-
            inferior corner.
        anatomy_offset_mm: (float, float, float). World position of the anatomy origin (body axis at the
            top of the right hemidiaphragm).
    """

    shape: tuple
    spacing_mm: tuple
    origin_mm: tuple
    anatomy_offset_mm: tuple

    @property
    def affine(self):
        affine = np.diag([*self.spacing_mm, 1.0])
        affine[:3, 3] = self.origin_mm
        return affine

    def world_axis_mm(self, axis):
        return self.origin_mm[axis] + self.spacing_mm[axis] * np.arange(self.shape[axis], dtype=np.float64)

    def anatomy_axes_mm(self):
        """The three 1D voxel-centre coordinate vectors in anatomy coordinates."""
        return [self.world_axis_mm(a) - self.anatomy_offset_mm[a] for a in range(3)]


def sample_grid(rng, modality, size):
    """Draws a grid for one case: resolution from `GRID_PRESETS`, field of view placed on the body.

    The anatomy sits at a random world position (table height and couch position differ between scans);
    the in-plane field of view is centred on the body within ±15 mm, and the top slice lies 15–45 mm above
    the right hemidiaphragm so upper slices show the lung bases.

    Args:
        rng: np.random.Generator.
        modality: "CT" or "MR".
        size: "small" or "full".

    Returns:
        SamplingGrid.
    """
    preset = GRID_PRESETS[(modality, size)]
    choices, probabilities = preset["matrix"]
    matrix = int(rng.choice(choices, p=probabilities))
    spacing_range = preset["spacing_mm"]
    if matrix == 288:  # keep a 288 matrix at a realistic field of view
        spacing_range = (spacing_range[0], min(spacing_range[1], 1.6))
    spacing = round(float(rng.uniform(*spacing_range)), 4)
    slice_mm = round(float(rng.uniform(*preset["slice_mm"])), 3)
    num_slices = preset.get("num_slices") or int(round(rng.uniform(*preset["coverage_mm"]) / slice_mm))
    anatomy_offset = (rng.uniform(-20, 20), rng.uniform(-30, 30), rng.uniform(-600, -200))
    fov_center = (anatomy_offset[0] + rng.uniform(-15, 15), anatomy_offset[1] + rng.uniform(-15, 15))
    top_z = anatomy_offset[2] + rng.uniform(15, 45)
    origin = (
        fov_center[0] - spacing * (matrix - 1) / 2,
        fov_center[1] - spacing * (matrix - 1) / 2,
        top_z - slice_mm * (num_slices - 1),
    )
    return SamplingGrid(
        shape=(matrix, matrix, num_slices),
        spacing_mm=(spacing, spacing, slice_mm),
        origin_mm=tuple(round(float(o), 3) for o in origin),
        anatomy_offset_mm=tuple(float(o) for o in anatomy_offset),
    )


def sample_orientation(rng, modality):
    choices, probabilities = ORIENTATIONS[modality]
    return choices[int(rng.choice(len(choices), p=probabilities))]


def reorient(arrays, affine, axcodes):
    """Stores canonical (RAS) arrays in the orientation `axcodes`, keeping every voxel's world position.

    Args:
        arrays: sequence of 3D arrays on the same canonical grid.
        affine: 4×4 canonical affine.
        axcodes: three nibabel axis codes, e.g. ("L", "P", "S").

    Returns:
        (list of reoriented arrays, new 4×4 affine); `nib.aff2axcodes(new_affine) == axcodes`.
    """
    transform = nib.orientations.ornt_transform(
        nib.orientations.axcodes2ornt(("R", "A", "S")), nib.orientations.axcodes2ornt(tuple(axcodes))
    )
    shape = arrays[0].shape
    new_affine = affine @ nib.orientations.inv_ornt_aff(transform, shape)
    # Contiguous copies: flipped views would be written slowly and compress no better.
    return [np.ascontiguousarray(nib.orientations.apply_orientation(a, transform)) for a in arrays], new_affine
