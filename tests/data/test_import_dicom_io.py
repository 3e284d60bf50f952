import numpy as np
import pytest
from pydicom.filewriter import dcmwrite
from test_import_builders import read_dicom, shuffled_order, write_dicom_slice, write_series

from keras_cdseg.data.dicom_io import natural_sort_key, read_series
from keras_cdseg.errors import InputError

# Rotated about an oblique axis: rows and columns point neither along x, y nor z.
OBLIQUE = (0.8660254, 0.5, 0.0, -0.3535534, 0.6123724, 0.7071068)


def _stored(num_slices, rows, cols, seed=0):
    return np.random.default_rng(seed).integers(0, 3000, size=(num_slices, rows, cols)).astype(np.int16)


def _world_ras_from_dicom(path, column, row):
    """What DICOM geometry says about pixel (row, column) of one file, converted from LPS to RAS."""
    ds = read_dicom(path)
    x_dir = np.array([float(v) for v in ds.ImageOrientationPatient[:3]])
    y_dir = np.array([float(v) for v in ds.ImageOrientationPatient[3:]])
    row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
    lps = np.array([float(v) for v in ds.ImagePositionPatient]) + column * col_spacing * x_dir + row * row_spacing * y_dir
    return lps * np.array([-1.0, -1.0, 1.0])


@pytest.mark.parametrize("orientation", [(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), OBLIQUE], ids=["axial", "oblique"])
def test_slices_are_ordered_by_position_and_affine_matches_dicom_geometry(tmp_path, orientation):
    stored = _stored(6, rows=5, cols=4)
    name_order = shuffled_order(6, seed=3)
    paths = write_series(tmp_path, stored, orientation=orientation, spacing_row_col=(0.8, 0.6), gap_mm=2.0,
                         name_order=name_order, slope=2.0, intercept=-1024.0)
    series = read_series(list(reversed(paths)))

    assert series.data.shape == (4, 5, 6)  # (columns, rows, slices)
    assert series.data.dtype == np.int16
    for k in range(6):
        np.testing.assert_array_equal(series.data[:, :, k], (stored[k].astype(np.int32) * 2 - 1024).T)
    # Every voxel's world coordinate from our affine equals the DICOM position of that pixel.
    for column, row, k in [(0, 0, 0), (3, 0, 2), (0, 4, 5), (3, 4, 1)]:
        path = paths[name_order.index(k)]
        world = series.affine @ np.array([column, row, k, 1.0])
        np.testing.assert_allclose(world[:3], _world_ras_from_dicom(path, column, row), atol=1e-4)
    spacing_mm = np.sqrt((series.affine[:3, :3] ** 2).sum(axis=0))
    np.testing.assert_allclose(spacing_mm, [0.6, 0.8, 2.0], atol=1e-6)
    assert series.modality == "CT"
    # order maps slice k back to the input file (input was reversed name order).
    reversed_paths = list(reversed(paths))
    assert [reversed_paths[i] for i in series.order] == [paths[name_order.index(k)] for k in range(6)]


def test_axial_lps_series_becomes_ras_with_flipped_first_two_axes(tmp_path):
    paths = write_series(tmp_path, _stored(3, 4, 4), spacing_row_col=(1.0, 1.0), gap_mm=3.0)
    affine = read_series(paths).affine
    np.testing.assert_allclose(affine[:3, :3], np.diag([-1.0, -1.0, 3.0]))
    np.testing.assert_allclose(affine[:3, 3], [10.0, -20.0, -30.0])


def test_float_rescale_gives_float32(tmp_path):
    paths = write_series(tmp_path, _stored(3, 4, 4), modality="MR", slope=0.5, intercept=0.25)
    data = read_series(paths).data
    assert data.dtype == np.float32
    assert np.all(np.mod(data - 0.25, 0.5) == 0)


def test_two_series_in_one_folder_is_rejected(tmp_path):
    write_series(tmp_path / "s", _stored(4, 4, 4), series_uid="1.2.3.1")
    write_series(tmp_path / "t", _stored(4, 4, 4), series_uid="1.2.3.2", gap_mm=2.5)
    paths = sorted((tmp_path / "s").glob("*.dcm")) + sorted((tmp_path / "t").glob("*.dcm"))
    with pytest.raises(InputError, match="mixed series: 8 files carry 2 different SeriesInstanceUIDs"):
        read_series(paths, source="CT/1/DICOM_anon")


def test_one_uid_per_slice_is_accepted_but_duplicate_positions_are_not(tmp_path):
    paths = write_series(tmp_path / "a", _stored(4, 4, 4), series_uid=None)
    assert read_series(paths).data.shape == (4, 4, 4)
    more = write_series(tmp_path / "b", _stored(4, 4, 4), series_uid=None)
    with pytest.raises(InputError, match="slice positions occur twice"):
        read_series(paths + more)


def test_differing_orientation_is_a_mixed_series(tmp_path):
    paths = write_series(tmp_path, _stored(3, 4, 4))
    write_dicom_slice(tmp_path / "extra.dcm", _stored(1, 4, 4)[0], (0, 0, 50), orientation=OBLIQUE,
                      series_uid=str(read_dicom(paths[0]).SeriesInstanceUID))
    with pytest.raises(InputError, match="mixed series: ImageOrientationPatient differs"):
        read_series(paths + [tmp_path / "extra.dcm"])


def test_missing_slice_is_reported_with_the_gap(tmp_path):
    paths = write_series(tmp_path, _stored(6, 4, 4), gap_mm=2.5)
    del paths[3]
    with pytest.raises(InputError, match=r"missing slices: gap of 5 mm after slice 2 of 5 \(median gap 2.5 mm\)"):
        read_series(paths, source="case_7")


def test_different_slice_sizes_are_rejected(tmp_path):
    paths = write_series(tmp_path, _stored(3, 4, 4))
    uid = str(read_dicom(paths[0]).SeriesInstanceUID)
    write_dicom_slice(tmp_path / "big.dcm", _stored(1, 5, 4)[0], (-10, 20, -22.5), series_uid=uid)
    with pytest.raises(InputError, match="different sizes"):
        read_series(paths + [tmp_path / "big.dcm"])


def test_non_dicom_file_names_the_file(tmp_path):
    bad = tmp_path / "i0000,0000b.dcm"
    bad.write_bytes(b"this is not DICOM")
    with pytest.raises(InputError, match=r"i0000,0000b.dcm: not a readable DICOM file"):
        read_series([bad])
    with pytest.raises(InputError, match="no DICOM files found"):
        read_series([], source="empty")


def test_files_without_preamble_and_file_meta_are_read(tmp_path):
    stored = _stored(3, 4, 5)
    paths = write_series(tmp_path, stored)
    for path in paths:
        ds = read_dicom(path)
        del ds.file_meta
        ds.preamble = None
        with open(path, "wb") as f:
            dcmwrite(f, ds, enforce_file_format=False, implicit_vr=True, little_endian=True)
    assert path.read_bytes()[128:132] != b"DICM"
    series = read_series(paths)
    np.testing.assert_array_equal(series.data, np.transpose(stored, (2, 1, 0)).astype(np.int32) - 1024)


def test_natural_sort_orders_numbers_numerically():
    names = ["IMG-0004-00010.png", "IMG-0004-00002.png", "i10,0000b.dcm", "i9,0000b.dcm"]
    assert sorted(names, key=natural_sort_key) == ["i9,0000b.dcm", "i10,0000b.dcm", "IMG-0004-00002.png", "IMG-0004-00010.png"]
