"""The test split as prepared network input, per modality: what the Table 3 and Fig. 2 analyses run on.

Volumes are prepared once per preparation setting (`prepare_volume`, as for evaluation) and kept in memory;
each run then stacks its own context (2T+1 channels). The benchmark's test split is small (a few volumes at
a reduced grid), so holding it is cheap; a large dataset should be analysed on a subset (`max_cases`).
"""

import numpy as np

from keras_cdseg.config import to_dict
from keras_cdseg.data.dataset import load_dataset
from keras_cdseg.data.nifti_io import load_image
from keras_cdseg.data.preprocessing import context_stack, prepare_volume
from keras_cdseg.errors import InputError


class PreparedTestSplit:
    """Prepared test-split slices by modality, reused across runs with the same preparation settings.

    Args:
        data_dir: the dataset directory.
        max_cases: int or None. At most this many test cases per modality (in dataset order).
    """

    def __init__(self, data_dir, max_cases=None):
        self.index = load_dataset(data_dir)
        self.max_cases = max_cases
        self._prepared = {}

    def by_modality(self, data_config, modalities=None):
        """`{modality: float32 [N, H, W, 2T+1]}` over the test cases (cases without a modality are skipped).

        Args:
            data_config: `DataConfig` of the model to analyse.
            modalities: iterable of str or None. Only these modalities; None: every modality in the split.

        Raises:
            InputError: the test split has no case with a modality.
        """
        volumes = self._volumes(data_config)
        if not volumes:
            raise InputError(self.index.root / "dataset.json", "the test split has no case with a modality")
        wanted = set(modalities) if modalities is not None else set(volumes)
        return {
            modality: np.concatenate(
                [context_stack(v, np.arange(v.shape[0]), data_config.context) for v in prepared], axis=0
            ).astype(np.float32, copy=False)
            for modality, prepared in sorted(volumes.items())
            if modality in wanted
        }

    def _volumes(self, data_config):
        settings = to_dict(data_config)
        settings.pop("context")
        key = repr(sorted(settings.items()))
        if key not in self._prepared:
            volumes = {}
            for case in self.index.test:
                if case.modality is None:
                    continue
                group = volumes.setdefault(case.modality, [])
                if self.max_cases is None or len(group) < self.max_cases:
                    group.append(prepare_volume(load_image(case.image), data_config).image)
            self._prepared[key] = volumes
        return self._prepared[key]
