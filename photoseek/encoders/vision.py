"""Image towers: normalised float images (B, 3, S, S) -> image features (B, C). No pretrained weights, ever."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from photoseek.encoders.config import VisionConfig


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Pool(nn.Module):
    """Global average, or a flatten of a small final map so that "left of" survives pooling."""

    def __init__(self, kind: str):
        super().__init__()
        if kind not in ("avg", "flatten"):
            raise ValueError(f"unknown pool {kind!r}; choose avg or flatten")
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        return x.mean((2, 3)) if self.kind == "avg" else x.flatten(1)  # (B, C) or (B, C*H*W)


def _final_side(image_size: int, downsamplings: int) -> int:
    side = image_size
    for _ in range(downsamplings):
        side = (side + 1) // 2
    return side


class SmallCNN(nn.Module):
    """Plain conv stages, each conv-bn-relu blocks then a stride-2 downsample; width doubles per stage."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        stages, cin = [], 3
        for i, blocks in enumerate(cfg.layers):
            cout = cfg.width * 2**i
            stage = [conv_bn(cin, cout, stride=2)] + [conv_bn(cout, cout) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            cin = cout
        self.features = nn.Sequential(*stages)
        self.pool = Pool(cfg.pool)
        side = _final_side(cfg.image_size, len(cfg.layers))
        self.out_dim = cin * (side * side if cfg.pool == "flatten" else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x))  # (B, C)


# Halvings of the image side in the stem. Small objects need the milder stems: the ImageNet stem turns a
# 12-pixel shape at 64 px into 3 pixels before the first residual block.
STEM_DOWNSAMPLING = {"imagenet": 2, "half": 1, "small": 0}


class ResNetTower(nn.Module):
    """torchvision's ResNet (BasicBlock), built with no weights, width and depth from the config."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        net = ResNet(BasicBlock, cfg.layers[:4] + [1] * (4 - len(cfg.layers[:4])), num_classes=1)
        w = cfg.width
        # torchvision fixes widths at 64..512; rebuild its stages at the configured width.
        net.inplanes = w
        if cfg.stem not in STEM_DOWNSAMPLING:
            raise ValueError(f"unknown stem {cfg.stem!r}; choose from {', '.join(STEM_DOWNSAMPLING)}")
        if cfg.stem == "small":
            net.conv1 = nn.Conv2d(3, w, 3, 1, 1, bias=False)
            net.maxpool = nn.Identity()
        elif cfg.stem == "half":
            net.conv1 = nn.Conv2d(3, w, 3, 2, 1, bias=False)
            net.maxpool = nn.Identity()
        else:
            net.conv1 = nn.Conv2d(3, w, 7, 2, 3, bias=False)
        net.bn1 = nn.BatchNorm2d(w)
        stages = [net._make_layer(BasicBlock, w * 2**i, n, stride=1 if i == 0 else 2) for i, n in enumerate(cfg.layers)]
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.stages = nn.Sequential(*stages)
        self.pool = Pool(cfg.pool)
        downs = STEM_DOWNSAMPLING[cfg.stem] + len(cfg.layers) - 1
        side = _final_side(cfg.image_size, downs)
        channels = w * 2 ** (len(cfg.layers) - 1)
        self.out_dim = channels * (side * side if cfg.pool == "flatten" else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(x)))  # (B, 3, S, S) -> (B, C)


VISION_TOWERS = {"cnn": SmallCNN, "resnet": ResNetTower}


def build_vision_tower(cfg: VisionConfig) -> nn.Module | None:
    if cfg.kind == "none":
        return None
    if cfg.kind not in VISION_TOWERS:
        raise ValueError(f"unknown image tower {cfg.kind!r}; choose from none, {', '.join(VISION_TOWERS)}")
    return VISION_TOWERS[cfg.kind](cfg)
