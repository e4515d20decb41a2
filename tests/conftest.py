import os

import pytest
import torch

os.environ.setdefault("STOCHGRAD_NO_PROGRESS", "1")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


# the experiments' small networks run fastest on one thread; extra threads thrash on shared cores
torch.set_num_threads(1)
