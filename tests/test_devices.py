"""One rule for choosing the device (advnets.devices), used by training, the metrics, the report and the CLI."""

import pytest
import torch

from advnets.devices import describe_device, resolve_device
from advnets.errors import ConfigError


def test_auto_and_none_choose_cuda_where_present_else_the_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    for asked in (None, "auto"):
        # float64 work never goes to MPS, so on a machine without CUDA it is the CPU
        assert resolve_device(asked, float64=True).type == expected


def test_an_explicit_cpu_and_a_torch_device_are_taken_as_given():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_a_missing_cuda_names_the_option_and_what_to_use_instead():
    with pytest.raises(ConfigError, match=r"^--device cuda: no CUDA device is available here; use --device cpu"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match=r"^--train-device cuda:1: no CUDA"):
        resolve_device("cuda:1", option="--train-device")


@pytest.mark.parametrize("bad", ["gpu", "tpu", "", 3.5])
def test_a_name_that_is_no_device_is_refused_naming_it(bad):
    with pytest.raises(ConfigError, match="expected auto, cpu, cuda or mps"):
        resolve_device(bad)


def test_the_report_names_the_device_it_describes():
    assert describe_device(torch.device("cpu")) == "cpu"
