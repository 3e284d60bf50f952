"""Random abdominal anatomy of one phantom, drawn in anatomy coordinates (mm).

Anatomy coordinates are RAS+ like the world: +x towards the patient's RIGHT, +y anterior, +z superior
(NIfTI/nibabel convention; DICOM's LPS has +x towards the patient's left). The origin is the body axis (x = y =
0) at the height of the top of the right hemidiaphragm (z = 0); the liver hangs below it on the +x side,
the spleen sits at -x. A case's world coordinates are these plus a random translation (table position), see
`phantom_grid`. All random draws of the anatomy happen here, independent of any grid, so one anatomy can be
rendered at CT and MR resolutions and stays the same body (`phantom_paint` does the rendering).
"""

import dataclasses

import numpy as np

from keras_cdseg.data.phantoms.shapes import Blob, random_warp, random_wave_field

# Tissue classes: the values of the tissue map. Intensities per modality live in `phantom_intensity`.
TISSUE_NAMES = (
    "air", "fat", "visceral_fat", "muscle", "lung", "heart", "liver", "liver_vessel", "liver_lesion",
    "gallbladder", "spleen", "kidney_cortex", "kidney_medulla", "bone_cortex", "bone_marrow", "disc", "csf",
    "aorta", "ivc", "stomach_wall", "gi_fluid", "gi_air", "bowel", "table",
)  # fmt: skip
TISSUE = {name: value for value, name in enumerate(TISSUE_NAMES)}
NUM_TISSUES = len(TISSUE_NAMES)
LIVER_TISSUES = (TISSUE["liver"], TISSUE["liver_vessel"], TISSUE["liver_lesion"])
KIDNEY_TISSUES = (TISSUE["kidney_cortex"], TISSUE["kidney_medulla"])


@dataclasses.dataclass(frozen=True, eq=False)
class Anatomy:
    """One random body. Dict fields hold plain floats (mm, degrees); shapes are `Blob`s.

    Attributes:
        body: outline (superellipse half-axes `a`, `b_ant`, `b_post`, `exponent`), fat and muscle
            thicknesses, slow z-modulation of the outline.
        spine: vertebral body centre/radii, disc period and phase, canal and posterior elements.
        vessels: aorta and IVC centres and radii (axial prisms).
        diaphragm: right and left dome peaks and curvatures; `thickness_mm`.
        organs: name -> tuple of Blobs ("liver", "spleen", "heart", "stomach", "gallbladder",
            "kidney_right", "kidney_left", "lesions"); empty tuple when absent.
        liver_vessels: two unit-gradient wave fields whose common zero set forms the vessel tree, the hilum
            and the radius profile.
        bowel: tuple of (Blob, content) with content "collapsed", "fluid" or "air".
        extras: stomach air level, psoas, paraspinal muscles, ribs, table.
    """

    body: dict
    spine: dict
    vessels: dict
    diaphragm: dict
    organs: dict
    liver_vessels: dict
    bowel: tuple
    extras: dict

    def summary(self):
        """A JSON-ready digest of the main random choices (for synth.json)."""
        right_lobe = self.organs["liver"][0]
        return {
            "body_half_axes_mm": [round(self.body[k], 1) for k in ("a", "b_ant", "b_post")],
            "subcutaneous_fat_mm": round(self.body["fat_mm"], 1),
            "liver_right_lobe_center_mm": [round(float(c), 1) for c in right_lobe.center_mm],
            "num_liver_lesions": len(self.organs["lesions"]),
            "gallbladder": bool(self.organs["gallbladder"]),
            "num_bowel_loops": len(self.bowel),
        }


def sample_anatomy(rng):
    """Draws one random abdomen.

    Args:
        rng: np.random.Generator. The only source of randomness; the same state gives the same anatomy.

    Returns:
        Anatomy.
    """
    u = rng.uniform
    a, b_ant, b_post = u(140, 170), u(100, 130), u(90, 110)
    fat = u(8, 35)
    body = dict(
        a=a, b_ant=b_ant, b_post=b_post, exponent=u(2.1, 2.6), fat_mm=fat, fat_post_mm=fat * u(0.6, 0.9),
        muscle_mm=u(6, 12), z_wavelength_mm=u(250, 450), z_amplitude=u(0.0, 0.04), z_phase=u(0, 2 * np.pi),
    )  # fmt: skip
    cavity_a = a - fat - body["muscle_mm"]

    y_vb = -u(0.30, 0.40) * b_post - 5
    spine = dict(
        y_body=y_vb, rx=u(19, 24), ry=u(15, 19), cortex_mm=u(2.0, 3.0), disc_period_mm=u(30, 36),
        disc_mm=u(7, 10), phase_mm=u(0, 36), canal_r=u(7.5, 9.5),
    )  # fmt: skip
    vessels = dict(
        aorta=(-u(10, 22), y_vb + spine["ry"] + u(12, 18)), aorta_r=u(9, 13),
        ivc=(u(14, 26), y_vb + spine["ry"] + u(10, 18)), ivc_r=(u(11, 16), u(8, 12)),
    )  # fmt: skip
    diaphragm = dict(
        right=(u(40, 70), u(-15, 15), 0.0), left=(-u(40, 70), u(-15, 15), -u(10, 25)),
        drop_lateral_mm=u(30, 50), drop_posterior_mm=u(70, 110), drop_anterior_mm=u(20, 40), thickness_mm=u(3, 5),
    )  # fmt: skip

    organs = {}
    liver_scale = u(0.8, 1.1)
    warp = random_warp(rng, amplitude=u(0.08, 0.14), wavelength_mm=(90, 240))
    right_lobe = Blob(
        center_mm=(u(45, 65), u(-15, 5), u(-80, -65)),
        radii_mm=tuple(liver_scale * np.array([u(70, 90), u(70, 90), u(75, 95)])),
        yaw_deg=u(-15, 15), warp=warp,
    )  # fmt: skip
    liver_blobs = [
        right_lobe,
        Blob(
            center_mm=(u(-35, -10), u(25, 45), u(-55, -35)),
            radii_mm=(liver_scale * u(40, 65), u(25, 38), u(30, 45)), yaw_deg=u(-25, 5), warp=warp,
        ),
        Blob(center_mm=(u(5, 20), u(0, 15), u(-60, -45)), radii_mm=(u(40, 50), u(40, 55), u(40, 50)), warp=warp),
    ]  # fmt: skip
    if rng.random() < 0.35:  # an inferior (Riedel-like) extension of the right lobe
        c = right_lobe.center_mm
        liver_blobs.append(
            Blob(center_mm=(c[0] + u(10, 30), c[1] + u(-10, 10), c[2] - u(50, 70)),
                 radii_mm=(u(30, 45), u(35, 50), u(40, 60)), warp=warp)
        )  # fmt: skip
    organs["liver"] = tuple(liver_blobs)
    lesions = []
    for _ in range(rng.integers(1, 4) if rng.random() < 0.3 else 0):
        center = np.asarray(right_lobe.center_mm) + u(-0.5, 0.5, size=3) * np.asarray(right_lobe.radii_mm)
        radius = u(5, 18)
        lesions.append(Blob(center_mm=tuple(center), radii_mm=(radius, radius * u(0.8, 1.2), radius * u(0.8, 1.2))))
    organs["lesions"] = tuple(lesions)
    c = right_lobe.center_mm
    organs["gallbladder"] = (
        (Blob(center_mm=(c[0] - u(10, 35), c[1] + u(25, 45), c[2] - u(30, 45)),
              radii_mm=(u(12, 20), u(12, 20), u(25, 40)), tilt_deg=u(-30, 0)),)
        if rng.random() < 0.75 else ()
    )  # fmt: skip
    spleen_scale = u(0.8, 1.25)
    spleen_center = (-u(0.62, 0.75) * cavity_a, -u(25, 45), u(-75, -50))
    spleen_yaw = u(-65, -35)
    spleen_warp = random_warp(rng, amplitude=u(0.08, 0.14), wavelength_mm=(60, 160))
    organs["spleen"] = (
        Blob(center_mm=spleen_center, radii_mm=tuple(spleen_scale * np.array([u(22, 30), u(45, 65), u(45, 60)])),
             yaw_deg=spleen_yaw, warp=spleen_warp),
        Blob(center_mm=(spleen_center[0] + u(5, 20), spleen_center[1] + u(15, 30), spleen_center[2] + u(-10, 10)),
             radii_mm=tuple(spleen_scale * np.array([u(14, 20), u(25, 35), u(25, 35)])),
             yaw_deg=spleen_yaw + u(20, 50), warp=spleen_warp),
    )  # fmt: skip
    for side, sign, z_range in (("right", 1.0, (-150, -120)), ("left", -1.0, (-135, -105))):
        organs[f"kidney_{side}"] = (
            Blob(center_mm=(sign * u(60, 75), y_vb + u(-5, 10), u(*z_range)),
                 radii_mm=(u(22, 28), u(26, 32), u(48, 60)), yaw_deg=-sign * u(20, 40), tilt_deg=sign * u(5, 15),
                 warp=random_warp(rng, amplitude=0.05, wavelength_mm=(60, 120))),
        )  # fmt: skip
    organs["heart"] = (
        Blob(center_mm=(u(-30, -10), u(10, 30), diaphragm["left"][2] + u(35, 50)),
             radii_mm=(u(55, 70), u(45, 55), u(50, 60)), yaw_deg=u(-30, 0)),
    )  # fmt: skip
    organs["stomach"] = (
        Blob(center_mm=(u(-85, -55), u(0, 30), u(-80, -50)), radii_mm=(u(35, 55), u(25, 40), u(35, 60)),
             yaw_deg=u(-30, 30), warp=random_warp(rng, amplitude=0.12, wavelength_mm=(60, 150))),
    )  # fmt: skip

    liver_vessels = dict(
        fields=(random_wave_field(rng, (45, 110), unit_gradient=True),
                random_wave_field(rng, (45, 110), unit_gradient=True)),
        hilum_mm=(u(0, 25), u(0, 20), u(-95, -70)), radius_mm=u(1.2, 2.0), hilum_radius_mm=u(3.0, 5.0),
        hilum_spread_mm=u(35, 55),
    )  # fmt: skip

    bowel = []
    for _ in range(int(rng.integers(6, 13))):
        radius = u(12, 28)
        center = (u(-0.7, 0.7) * cavity_a, u(-0.1, 0.7) * (b_ant - fat), u(-320, -110))
        content = rng.choice(["collapsed", "fluid", "air"], p=[0.4, 0.4, 0.2])
        bowel.append((Blob(center_mm=center, radii_mm=(radius, radius * u(0.6, 1.0), radius * u(1.0, 2.0)),
                           yaw_deg=u(0, 180), tilt_deg=u(-40, 40)), str(content)))  # fmt: skip

    extras = dict(
        stomach_air_level=u(0.2, 0.9),
        psoas=dict(x_mm=u(30, 38), y_mm=y_vb + u(0, 10), z_start_mm=u(-140, -110), radius_mm=u(6, 10),
                   growth_per_mm=u(0.08, 0.15)),
        paraspinal=dict(x_mm=u(30, 38), y_mm=y_vb - spine["ry"] - u(10, 18), radii_mm=(u(22, 30), u(20, 26))),
        ribs=dict(period_mm=u(28, 36), phase_mm=u(0, 36), drop_mm=u(80, 120), costal_z_ant_mm=u(-100, -70),
                  costal_z_post_mm=u(-190, -150)),
        table=dict(gap_mm=u(2, 12), thickness_mm=u(5, 10), curvature=u(0.0, 0.0008)),
    )  # fmt: skip
    return Anatomy(body=body, spine=spine, vessels=vessels, diaphragm=diaphragm, organs=organs,
                   liver_vessels=liver_vessels, bowel=tuple(bowel), extras=extras)  # fmt: skip
