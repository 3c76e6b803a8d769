"""Built-in procedural datasets ``synthetic_city`` and ``synthetic_voc`` (no download needed).

Both are generated once, deterministically from their parameters, and written **in the official
dataset layouts**, so the ordinary Cityscapes / VOC readers and DataModules read them like the real
data. ``ensure_synthetic(kind, root, **params)`` is what the DataModules call in ``prepare_data``;
``python -m leseg.data.synthetic city data/synthetic_city --num-train 200`` does the same from the
shell.

Generation is atomic (built in a temporary sibling folder, the marker ``leseg_synthetic.json`` —
kind, generator version, parameters, label pixel fractions — written last, then renamed onto
``root``) and deterministic: the same parameters give byte-identical files; sample i of a split is
drawn from a random generator seeded with (seed, dataset kind, split, i) alone.

synthetic_city — Cityscapes layout (``<d>`` = ``<split>/<city>``, ``<stem>`` =
``<city>_<seq:06d>_000019``; splits ``train`` (cities ``synthcity_a``, ``synthcity_b``) and
``val`` (``synthcity_v``))::

    leftImg8bit/<d>/<stem>_leftImg8bit.png                RGB uint8, frame 19 (annotated)
    leftImg8bit_sequence/<d>/<city>_<seq>_<f>_leftImg8bit.png   f = 000018, 000019, 000020
    gtFine/<d>/<stem>_gtFine_labelIds.png                 uint8 Cityscapes labelIds
    gtFine/<d>/<stem>_gtFine_color.png                    RGBA, official Cityscapes colours
    camera/<d>/<stem>_camera.json                         intrinsics/extrinsics (below)
    vehicle/<d>/<stem>_vehicle.json                       speed (m/s), yawRate 0, GPS (dummy)
    disparity/<d>/<stem>_disparity.png                    uint16, Cityscapes disparity encoding

Classes (Cityscapes labelIds): 7 road, 8 sidewalk, 11 building, 17 pole, 20 traffic sign,
21 vegetation, 23 sky, 24 person, 26 car, and 1 ego vehicle (a bonnet band at the bottom of about
half of the images; void → ignore). Every sample is one rigid 3-D street scene (ground plane with
road, lane markings and sidewalks; building facades with windows, hedges and gaps along both
sides, sometimes a row set back and a row across the street; cars as boxes, persons, street lamps,
posts, traffic signs and trees as camera-facing cut-outs; sky at infinity) rendered per pixel by
ray casting with a z-buffer (:mod:`~leseg.data.synthetic.city_render`). Nuisances: per-sequence
exposure, white balance and gamma; one of 64 appearance themes per scene
(:class:`~leseg.data.synthetic.city_scene.Theme`, shared by train and val): a colour matrix of the
camera response (hue rotation up to half a turn, saturation 0.5–1.4), a recolouring of every class
(:class:`~leseg.data.synthetic.city_scene.Tint`: hue shift, saturation and value of road, sidewalk,
buildings, vegetation, cars, persons, poles and sky, then a mix of 30–85 % towards a colour of the
theme, plus per-instance hue jitter), a world-fixed surface pattern per class
(:class:`~leseg.data.synthetic.city_scene.Pattern`: plain, stripes, checker or blotches of
0.15–3 m, with a colour gain), the texture scale and contrast of asphalt, plaster and foliage,
paving tile size, road stains and the colour of the shop signs (distractors labelled building);
sunny (world-fixed cast shadows of buildings, cars, trees and persons) or overcast lighting;
overlapping colours; per-frame Gaussian sensor noise; anti-aliasing (rays cast on a half-pixel
grid, [1, 2, 1] tent filter; labels and depth are the samples at the pixel centres). The
appearance distribution is wide on purpose: 20 labelled frames show only about 17 of the 64
themes, 200 frames about 61, so few labels cover little of the appearance
(``python -m leseg.results synthetic_city_supervised`` measures the supervised curve). The
appearance comes from its own random stream (spawned from the sample's generator), so the scene
layouts, labels, depth and camera motion are the same as without themes.

Camera model and motion: pinhole, square pixels, pixel (u, v) centred at integer coordinates,
fx = fy = 0.8 · W (≈ 64° horizontal field of view), principal point (u0, v0) = (W/2, H/2) in pixels
of the written image; zero pitch/roll/yaw; mounted ``z`` = 1.25–1.6 m above the ground (per
sequence; ``x`` = 1.7 m ahead of the vehicle reference point, ``y`` = 0). The camera moves straight
forward along its optical axis at ``speed`` m/s (5–12, in ``vehicle/*.json``); sequence frames are
1/17 s apart (Cityscapes' 17 Hz), so the camera translation from frame f to f + 1 is
``t = (0, 0, speed / 17)`` metres in camera coordinates (x right, y down, z forward), with no
rotation. Nothing else in the scene moves, and all textures are fixed in world coordinates: warping
frame 18 or 20 into frame 19 with the true depth and this pose reproduces it up to occlusions,
image borders and noise.

Depth: ``disparity.png`` stores p = round(256 · d) + 1 with disparity d = baseline · fx / depth in
pixels (baseline = 0.209313 m, the Cityscapes rig; fx in pixels of the written image; depth in
metres along the optical axis), i.e. d = (p − 1) / 256 for p > 0; p = 0 marks invalid pixels (sky
and ego vehicle, which have no finite depth).

synthetic_voc — VOC2012 layout (``root`` is the ``VOC2012`` folder; ids ``syn_000001``…)::

    JPEGImages/<id>.jpg                       RGB, JPEG quality 95
    SegmentationClass/<id>.png                mode "P" with the standard VOC colour map
    SegmentationClassAug/<id>.png             mode "L", the same class indices
    ImageSets/Segmentation/{train,val,trainval,train_aug}.txt   ids, one per line (train_aug = train)

Classes (VOC indices): 0 background, 1 aeroplane, 4 boat, 5 bottle, 7 car, 8 cat, 15 person,
16 pottedplant, 20 tvmonitor, and 255 for a ~4 px band around every object outline (as in VOC).
Each class has its own shape family and colour/texture distribution (with overlaps between
classes); 1–4 objects per image with random size, aspect, rotation and mirroring may occlude each
other, over cluttered backgrounds with background-labelled distractor shapes
(:mod:`~leseg.data.synthetic.voc_objects`, :mod:`~leseg.data.synthetic.voc`).
"""

from __future__ import annotations

from .city import CitySample, city_sample_ids, city_scene_for, disparity_to_png
from .city_render import CityFrame, render_city_frame
from .city_scene import (
    ANNOTATED_FRAME,
    BASELINE_M,
    CITY_LABEL_IDS,
    CITYSCAPES_COLORS,
    FRAME_RATE_HZ,
    CityScene,
    sample_city_scene,
)
from .generate import (
    GENERATOR_VERSION,
    ensure_synthetic,
    generate_synthetic_city,
    generate_synthetic_voc,
)
from .storage import MARKER_NAME
from .voc import voc_palette
from .voc_objects import VOC_OBJECT_CLASSES

__all__ = [
    "ANNOTATED_FRAME", "BASELINE_M", "CITYSCAPES_COLORS", "CITY_LABEL_IDS", "CityFrame",
    "CitySample", "CityScene", "city_sample_ids", "city_scene_for", "FRAME_RATE_HZ", "GENERATOR_VERSION", "MARKER_NAME", "VOC_OBJECT_CLASSES",
    "disparity_to_png", "ensure_synthetic", "generate_synthetic_city", "generate_synthetic_voc",
    "render_city_frame", "sample_city_scene", "voc_palette",
]
