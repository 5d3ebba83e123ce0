"""Pages of weights mapped from a checkpoint are given back, data kept."""

import os

from camera_caption.utilities.file_pages import (file_backed, page_out,
                                                 tensor_ranges)
import pytest
from safetensors import safe_open
from safetensors.torch import save_file
import torch

pytestmark = pytest.mark.unit


def rss_file_mib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('RssFile:'):
                return int(line.split()[1]) / 1024
    pytest.skip('no RssFile in /proc/self/status')


def test_mapped_weights_leave_rss_and_read_back_the_same(tmp_path):
    path = str(tmp_path / 'w.safetensors')
    save_file({'weight': torch.randn(4096, 4096).to(torch.bfloat16),
               'bias': torch.randn(7)}, path)
    with safe_open(path, 'pt') as f:      # mapped, as from_pretrained does
        weight = f.get_tensor('weight')
    total = weight.float().sum()          # every page read: resident
    ranges = file_backed(tensor_ranges([weight]))
    if not ranges:
        pytest.skip('safetensors copied the tensor instead of mapping it')
    before = rss_file_mib()
    advised = page_out(ranges)
    if not advised:
        pytest.skip('madvise(MADV_PAGEOUT) refused (Linux < 5.4?)')
    page = os.sysconf('SC_PAGE_SIZE')
    assert advised >= 32 * 2**20 - 2 * page     # 32 MiB less partial pages
    assert before - rss_file_mib() >= 24, (before, rss_file_mib())
    assert torch.equal(weight.float().sum(), total)   # read back from file


def test_memory_that_no_file_backs_is_never_advised():
    weight = torch.randn(1024, 1024)      # ordinary (anonymous) memory
    assert file_backed(tensor_ranges([weight])) == []


def test_partial_pages_and_empty_ranges_are_left_alone():
    assert page_out([(4096 * 10 + 1, 4096)]) == 0   # no whole page inside
    assert page_out([]) == 0
    assert tensor_ranges([torch.empty(0)]) == []
