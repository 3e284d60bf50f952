"""Importing source folders into a dataset directory (`cdseg preprocess`), apart from the training pipeline.

- `formats`: which format a folder is (`detect_format`) and its cases (`discover_sources`), one module per
  format: `nifti_pairs`, `msd`, `chaos`.
- `multi_source`: several sources with once-or-per-source options as one list of cases with one label set.
- `labels`: `--labels` remapping; `validation`: checks shared by every format.
- `importer`: `import_dataset` (one source) and `import_sources` (several), atomic and all-or-nothing.
"""

from keras_cdseg.data.importing.formats import FORMATS, detect_format  # noqa: F401
from keras_cdseg.data.importing.importer import REPORT_JSON, ImportResult, import_dataset, import_sources  # noqa: F401
from keras_cdseg.data.importing.labels import parse_label_spec  # noqa: F401
from keras_cdseg.data.importing.multi_source import ImportSource, sources_from_options  # noqa: F401
from keras_cdseg.data.importing.validation import DatasetProblems  # noqa: F401
