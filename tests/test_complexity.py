"""Parameter and multiply-add counting."""

from __future__ import annotations

import pytest
from torch import nn

from edge_reid.bench import complexity
from edge_reid.errors import InvalidInputError
from edge_reid.models import build_model


def test_conv_and_linear_macs_follow_the_textbook_formula() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    report = complexity(model, input_size=(10, 6), batch=2)
    expected_per_image = 3 * 8 * 3 * 3 * 10 * 6 + 8 * 5  # BN, ReLU and pooling are not counted
    assert report.macs == 2 * expected_per_image
    assert report.gmacs == pytest.approx(expected_per_image / 1e9)
    assert report.params == sum(p.numel() for p in model.parameters())
    assert model.training  # the mode is restored after the eval-mode count


def test_paper_conventions_count_batch_norm_as_thop_does() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.BatchNorm2d(8, affine=False))
    report = complexity(model, input_size=(10, 6), batch=2)
    elements = 8 * 10 * 6
    assert report.bn_ops == 2 * (4 * elements + 2 * elements)  # affine BN: 4 per element, plain: 2
    assert report.gflops("thop") == pytest.approx((report.macs + report.bn_ops) / 2 / 1e9)
    assert report.gflops("2x-macs") == pytest.approx(2 * report.gmacs)
    with pytest.raises(InvalidInputError, match="convention"):
        report.gflops("fvcore")


def test_resnet50_at_224_matches_the_known_4_1_gmacs() -> None:
    report = complexity(build_model("resnet50", num_classes=1000), input_size=(224, 224))
    assert report.gmacs == pytest.approx(4.1, rel=0.02)  # torchvision lists 4.09 G for ResNet50
    assert report.params == 23_508_032 + 2048 * 2 + 2048 * 1000
    assert report.params - report.trainable_params == 2048  # the frozen BNNeck bias
    assert report.parts["head.classifier"] == 2048 * 1000 and report.parts["head.bn"] == 4096
    assert report.parts["backbone"] + report.parts["head"] == report.params
    table = report.table()
    assert "head.classifier" in table and "2,048,000" in table and "GMACs/image" in table


def test_visnet_parts_and_training_only_head_not_counted() -> None:
    with_head = complexity(build_model("visnet", num_classes=751, input_size=(64, 32)), input_size=(64, 32))
    without = complexity(build_model("visnet", num_classes=751, semantic_head=False, input_size=(64, 32)),
                         input_size=(64, 32))
    assert with_head.parts["semantic_head"] == 2_628_100 and with_head.parts["fusion"] == 4_733_444
    assert with_head.params - without.params == 2_628_100
    assert with_head.macs == without.macs  # eval mode: the semantic head does not run
    # projections of stages 1-3 at native resolution: 16x8, 8x4, 4x2 positions at 64x32 input
    proj = 16 * 8 * 256 * 2048 + 8 * 4 * 512 * 2048 + 4 * 2 * 1024 * 2048
    plain = complexity(build_model("resnet50", num_classes=751, input_size=(64, 32)), input_size=(64, 32))
    attention = 2048 * 512 + 512 * 4
    assert with_head.macs - plain.macs == proj + attention


def test_bad_input_size_is_a_clear_error() -> None:
    with pytest.raises(InvalidInputError, match="input_size"):
        complexity(nn.Linear(2, 2), input_size=(0, 4))
