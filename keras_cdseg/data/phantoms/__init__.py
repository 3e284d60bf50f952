"""The built-in synthetic CT/MR phantoms (`cdseg synth`, docs/data.md).

- `grid`: voxel grids per modality and size; `shapes`: blobs, warps, unions; `anatomy`: organ layout;
- `paint`: tissue map; `intensity`: CT (HU) and MR rendering; `synthetic`: cases and datasets.
"""
