"""Writers of small synthetic datasets in real on-disk formats, for the demo and the tests.

One module per writer, all on the skeleton of ``common`` (write-once marker, split sizes, seeded generators,
backgrounds and shapes):

- ``shapes``: ``write_shapes_classification``, one shape per image, as an ImageFolder tree;
- ``detection``: ``write_shapes_detection``, 0..N shapes per image, in COCO's format;
- ``fine_grained``: ``write_fine_grained_shapes``, birds told apart by small details, as an ImageFolder tree;
- ``faces``: ``write_synthetic_faces``, cartoon faces in CelebA's official format;
- ``geo``: ``write_synthetic_geo``, geotagged photos in the geo CSV format.

A fixed seed makes each reproducible; a ``.complete`` marker written last means an interrupted write is redone,
not reused.
"""

from mobivision.data.synthetic.common import SHAPES, draw_shape
from mobivision.data.synthetic.detection import (
    DrawnObject,
    detection_image_rng,
    draw_detection_image,
    write_shapes_detection,
)
from mobivision.data.synthetic.faces import (
    FACE_ATTRIBUTE_PRIORS,
    FACE_ATTRIBUTES,
    draw_attributes,
    draw_face,
    draw_wild,
    write_synthetic_faces,
)
from mobivision.data.synthetic.fine_grained import (
    BIRD_SPECIES,
    SPOT_COLORS,
    BirdSpecies,
    draw_bird,
    write_fine_grained_shapes,
)
from mobivision.data.synthetic.geo import (
    GEO_REGIONS,
    GeoCity,
    GeoRegion,
    draw_geo_image,
    sample_place,
    scatter_location,
    write_synthetic_geo,
)
from mobivision.data.synthetic.shapes import write_shapes_classification

__all__ = [
    "BIRD_SPECIES",
    "FACE_ATTRIBUTES",
    "FACE_ATTRIBUTE_PRIORS",
    "GEO_REGIONS",
    "SHAPES",
    "SPOT_COLORS",
    "BirdSpecies",
    "DrawnObject",
    "GeoCity",
    "GeoRegion",
    "detection_image_rng",
    "draw_attributes",
    "draw_bird",
    "draw_detection_image",
    "draw_face",
    "draw_geo_image",
    "draw_shape",
    "draw_wild",
    "sample_place",
    "scatter_location",
    "write_fine_grained_shapes",
    "write_shapes_classification",
    "write_shapes_detection",
    "write_synthetic_faces",
    "write_synthetic_geo",
]
