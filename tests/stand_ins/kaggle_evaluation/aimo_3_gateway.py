"""Stand-in for the AIMO-3 gateway: shuffled rows, one at a time, as one-row frames whose columns become predict's arguments."""

import os

import polars as pl

from .core import templates

# Under the rerun the real gateway reads the competition's mount; the stand-in reads the folder it lives in.
DEFAULT_TEST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test.csv")


class AIMO3Gateway(templates.Gateway):
    RESPONSE_TIMEOUT_S = 60 * 60 * 9

    def __init__(self, data_paths=None):
        super().__init__(data_paths, file_share_dir=None)
        self.set_response_timeout_seconds(self.RESPONSE_TIMEOUT_S)

    def unpack_data_paths(self):
        self.test_path = self.data_paths[0] if self.data_paths else DEFAULT_TEST

    def generate_data_batches(self):
        test = pl.read_csv(self.test_path)
        test = test.sample(fraction=1.0, shuffle=True, with_replacement=False, seed=int.from_bytes(os.urandom(4), "big"))
        for row in test.iter_slices(n_rows=1):
            yield row, row.select("id")
