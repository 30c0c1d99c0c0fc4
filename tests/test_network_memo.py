"""tests/network_memo.py answers only a call it has seen in every bit, and leaves the module as it was."""

from __future__ import annotations

import torch
from network_memo import remembered_calls


def test_only_a_bit_identical_call_on_unchanged_weights_is_remembered():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(4, 4, 3, padding=1)
    x = torch.randn(1, 4, 8, 8)
    seen = []
    net.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    with torch.no_grad(), remembered_calls(net) as counts:
        first = net(x)
        first.add_(1.0)  # the caller's copy only
        again = net(x.clone())
        assert torch.equal(again, net.forward(x)) and not torch.equal(again, first)
        assert counts == {"run": 1, "remembered": 2}
        nudged = x.clone()
        nudged.view(-1)[5] = torch.nextafter(nudged.view(-1)[5], torch.tensor(10.0))
        net(nudged)
        net(x.to(memory_format=torch.channels_last))  # same values, other strides
        assert counts["run"] == 3
        net.weight.mul_(2.0)
        assert torch.allclose(net(x), torch.nn.functional.conv2d(x, net.weight, net.bias, padding=1))
        assert counts == {"run": 4, "remembered": 2}
    assert len(seen) == 5  # hooks ran on every call through the module
    assert "forward" not in net.__dict__


def test_a_replaced_submodule_or_parameter_and_its_later_edits_are_seen():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 2, 1), torch.nn.Conv2d(2, 2, 1))
    x = torch.randn(1, 2, 4, 4)
    with torch.no_grad(), remembered_calls(net) as counts:
        net(x)
        net[1] = torch.nn.Conv2d(2, 2, 1)
        assert torch.equal(net(x), net[1](net[0](x)))
        net[1].weight.add_(1.0)  # an edit of the new child, which the first call's list of modules did not hold
        assert torch.equal(net(x), net[1](net[0](x)))
        net[0].bias = torch.nn.Parameter(torch.ones(2))
        assert torch.equal(net(x), net[1](net[0](x)))
        net(x)
        assert counts == {"run": 4, "remembered": 1}
