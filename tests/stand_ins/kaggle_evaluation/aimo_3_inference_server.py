from .aimo_3_gateway import AIMO3Gateway
from .core import templates


class AIMO3InferenceServer(templates.InferenceServer):
    def _get_gateway_for_test(self, data_paths=None, *args, **kwargs):
        return AIMO3Gateway(data_paths)
