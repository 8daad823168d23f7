from .aimo_2_gateway import AIMO2Gateway
from .core import templates


class AIMO2InferenceServer(templates.InferenceServer):
    def _get_gateway_for_test(self, data_paths=None, *args, **kwargs):
        return AIMO2Gateway(data_paths)
